"""Atomic file output: write a temporary file beside the target, then rename.

An interrupted or failed write never leaves a truncated file at ``path``,
and the temporary file is removed.
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; rename it on success."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(obj: Any, path: str, indent: int = 2) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=indent)
            f.write('\n')


@contextmanager
def atomic_outputs(*paths: str) -> Iterator[list]:
    """Several files that belong together (an OpenVINO ``.xml`` + ``.bin``).

    Yields paths with the targets' own names inside a temporary folder
    beside the first target; on success they are renamed into place (the
    last one last, so a reader that looks for the first file finds the
    others); on any failure nothing is left at the targets.
    """
    folder = os.path.dirname(os.path.abspath(paths[0]))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.tmp-', dir=folder)
    tmp = [os.path.join(tmp_dir, os.path.basename(p)) for p in paths]
    try:
        yield tmp
        moved = []
        try:
            for src, dst in reversed(list(zip(tmp, paths))):
                os.replace(src, dst)
                moved.append(dst)
        except BaseException:
            for dst in moved:  # never leave half a pair
                os.remove(dst)
            raise
    finally:
        for p in tmp:
            if os.path.exists(p):
                os.remove(p)
        shutil.rmtree(tmp_dir, ignore_errors=True)
