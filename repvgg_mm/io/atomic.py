"""Atomic output: a temporary file (or folder) beside the target, renamed
on success; a failed write leaves nothing, a killed one's temporary goes
with the next write into the folder, a full disk raises OutputError."""
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
from typing import Any, Iterator, List, Sequence

from .output_guard import disk_full_error

TMP_PREFIX = '.tmp-repvgg_mm-'


def _host() -> str:
    return re.sub(r'[^A-Za-z0-9_.]', '_', socket.gethostname()) or 'host'


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    return True


def remove_stale_temporaries(folder: str) -> None:
    """Remove the temporaries of this host's killed writes in ``folder``."""
    pattern = re.compile(re.escape(f'{TMP_PREFIX}{_host()}-') + r'(\d+)-')
    try:
        entries = list(os.scandir(folder))
    except OSError:  # unreadable: nothing to clean
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _process_exists(int(match.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(entry.path)


def temporary_path(path: str) -> str:
    """A fresh name for the temporary file of ``path`` (same folder)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(
        folder, f'{TMP_PREFIX}{_host()}-{os.getpid()}-'
        f'{secrets.token_hex(4)}-{name}')


def make_folders(folder: str) -> List[str]:
    """``os.makedirs(folder, exist_ok=True)``; returns what it created."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.lexists(folder):
        missing.insert(0, folder)
        folder = os.path.dirname(folder)
    try:
        for name in missing:
            os.makedirs(name, exist_ok=True)
    except OSError:
        remove_folders(missing)
        raise
    return missing


def remove_folders(created: Sequence[str]) -> None:
    """Remove the folders :func:`make_folders` created where empty."""
    for name in reversed(list(created)):
        with contextlib.suppress(OSError):
            os.rmdir(name)


@contextlib.contextmanager
def _temporary(path: str, folder: bool = False) -> Iterator[str]:
    """A temporary file (or folder) for ``path``, removed unless renamed."""
    parent = os.path.dirname(os.path.abspath(path))
    created = make_folders(parent)
    try:
        remove_stale_temporaries(parent)
        tmp = temporary_path(path)
        if folder:
            os.mkdir(tmp)
        else:  # 'x': never someone else's file; umask permissions
            open(tmp, 'x').close()
        try:
            yield tmp
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            elif os.path.lexists(tmp):
                os.remove(tmp)
    except BaseException as exc:
        remove_folders(created)
        error = disk_full_error(exc, path)
        if error is not None:
            raise error from None
        raise


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; rename it on success."""
    with _temporary(path) as tmp:
        yield tmp
        os.replace(tmp, path)


def atomic_write_bytes(data: bytes, path: str) -> None:
    with atomic_output(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def atomic_write_text(text: str, path: str, encoding: str = 'utf-8') -> None:
    atomic_write_bytes(text.encode(encoding), path)


def atomic_write_json(obj: Any, path: str, indent: int = 2) -> None:
    atomic_write_text(json.dumps(obj, indent=indent) + '\n', path)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temporary folder that becomes (replaces) ``path`` on success."""
    path = os.path.abspath(path)
    with _temporary(path, folder=True) as tmp:
        yield tmp
        old = temporary_path(path + '.old')
        if os.path.lexists(path):
            os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_files(paths: Sequence[str]) -> Iterator[List[str]]:
    """Temporary paths for files that belong together (``.xml`` + ``.bin``),
    renamed on success, the last last (then the set is complete)."""
    with _temporary(paths[-1], folder=True) as tmp_dir:
        tmps = [os.path.join(tmp_dir, os.path.basename(p)) for p in paths]
        yield tmps
        missing = [t for t in tmps if not os.path.isfile(t)]
        if missing:
            raise FileNotFoundError(f'expected output files were not '
                                    f'written: {missing}')
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
