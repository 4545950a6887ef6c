"""Atomic output: write a temporary file (or folder) beside the target,
then rename it.

* An interrupted or failed write never leaves a truncated file (or a half
  folder, :func:`atomic_directory`) at ``path``.
* The temporary file is named ``.tmp-repvgg_mm-<host>-<pid>-<random>-<name>``.
  A write that fails removes it; one killed outright (SIGKILL, power cut)
  leaves it behind, and the next atomic write into the same folder removes
  every such file of this host whose process no longer runs.
* Files are created with mode ``0o666`` filtered by the user's umask (0644
  under umask 022), as ``open(path, 'w')`` would; ``tempfile.mkstemp``
  would leave them 0600.
* :func:`atomic_files` writes a set of files that belong together (an
  OpenVINO ``.xml`` + ``.bin``).
* :func:`check_output_path` checks, before any work, that a file can be
  created at ``path`` (missing parent folders are created).
"""
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, List, Sequence

from ..errors import ConfigError

TMP_PREFIX = '.tmp-repvgg_mm-'


def _host() -> str:
    return re.sub(r'[^A-Za-z0-9_.]', '_', socket.gethostname()) or 'host'


def _tmp_pattern() -> 're.Pattern':
    return re.compile(re.escape(f'{TMP_PREFIX}{_host()}-') +
                      r'(?P<pid>\d+)-[0-9a-f]+-')


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove the temporary files of killed atomic writes in ``folder``
    (this host's, whose process is gone); returns their paths."""
    pattern = _tmp_pattern()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match and not _process_exists(int(match.group('pid'))):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
    return removed


def temporary_path(path: str) -> str:
    """A fresh name for the temporary file of ``path`` (same folder)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(
        folder, f'{TMP_PREFIX}{_host()}-{os.getpid()}-'
        f'{secrets.token_hex(4)}-{name}')


def create_temporary(path: str) -> str:
    """Create (empty, umask permissions) and return the temporary file of
    ``path``; stale temporaries of killed writes are removed first."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)
    while True:
        tmp = temporary_path(path)
        try:  # 0o666 & ~umask, like open(); O_EXCL: never someone else's
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; rename it on success."""
    tmp = create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(data: bytes, path: str) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def atomic_write_text(text: str, path: str, encoding: str = 'utf-8') -> None:
    with atomic_output(path) as tmp:
        with open(tmp, 'w', encoding=encoding) as f:
            f.write(text)


def atomic_write_json(obj: Any, path: str, indent: int = 2) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=indent)
            f.write('\n')


def check_output_path(path: str, what: str = 'OUT') -> None:
    """Check that the file ``path`` can be written, before any work.

    Missing parent folders are created. Raises
    :class:`~repvgg_mm.errors.ConfigError` naming ``what`` (the option)
    when ``path`` is a folder, a parent is a regular file, or the folder
    cannot be created or written (read-only, ``/proc``, permissions).
    """
    if os.path.isdir(path):
        raise ConfigError(f'{what} "{path}" is a folder; give a file name '
                          f'(e.g. {os.path.join(path, "model.pth")}).')
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f'cannot create the folder "{folder}" of {what} "{path}" '
            f'({exc.strerror or exc}). Choose an {what} in a folder you can '
            f'write.') from None
    try:  # the real test: create (and remove) a file there
        os.remove(create_temporary(path))
    except OSError as exc:
        raise ConfigError(
            f'cannot write {what} "{path}": no file can be created in '
            f'"{folder}" ({exc.strerror or exc}). Choose an {what} in a '
            f'folder you can write.') from None


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


@contextmanager
def atomic_files(paths: Sequence[str]) -> Iterator[List[str]]:
    """Temporary paths for a set of files that belong together (an
    OpenVINO ``.xml`` + ``.bin``), in a temporary folder beside them; all
    are renamed on success, the last one of ``paths`` last, so its presence
    means the set is complete. On failure none of ``paths`` is touched and
    the temporary folder is removed."""
    folder = os.path.dirname(os.path.abspath(paths[-1]))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.tmp-files-', dir=folder)
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
