"""Atomic output: write a temporary file (or folder) beside the target,
then rename it.

An interrupted or failed write never leaves a truncated file or a half
folder at ``path``, and the temporary one is removed.
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, List, Sequence


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
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temporary folder beside ``path``; on success it becomes
    ``path`` (an existing ``path`` is replaced only then), on failure it is
    removed and ``path`` is left as it was.

    The swap is two renames in the same folder: the old folder is moved
    aside, the new one moved in, then the old one is deleted.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
    try:
        yield tmp
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
            os.rmdir(old)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def check_output_path(path: str, suffixes: Sequence[str], what: str) -> str:
    """``path`` if it ends with one of ``suffixes`` and is not a folder;
    else a :class:`~repvgg_mm.utils.cli.ToolError` naming the fix (raised
    before anything is computed or written)."""
    from ..utils.cli import ToolError
    if not path or not path.endswith(tuple(suffixes)):
        raise ToolError(f'{what} "{path}" must end with '
                        f'{" or ".join(suffixes)}.')
    if os.path.isdir(path):
        raise ToolError(f'{what} "{path}" is a folder; give a file name.')
    return path


@contextmanager
def atomic_files(paths: Sequence[str]) -> Iterator[List[str]]:
    """Temporary paths for a set of files that belong together (an
    OpenVINO ``.xml`` + ``.bin``); all are renamed on success, the last one
    of ``paths`` last, so its presence means the set is complete. On failure
    none of ``paths`` is touched and the temporary files are removed."""
    folder = os.path.dirname(os.path.abspath(paths[-1]))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.tmp-', dir=folder)
    tmps = [os.path.join(tmp_dir, os.path.basename(p)) for p in paths]
    try:
        yield tmps
        missing = [t for t in tmps if not os.path.isfile(t)]
        if missing:
            raise FileNotFoundError(f'expected output files were not '
                                    f'written: {missing}')
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
