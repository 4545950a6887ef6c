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
* Missing folders are created at write time and removed again if the
  write fails; a full disk raises :class:`~repvgg_mm.errors.OutputError`
  naming it. The checks before any work are
  :mod:`repvgg_mm.io.output_guard`'s (:func:`check_output_path` is its
  one-file form).
"""
import json
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from typing import Any, Iterator, List, Sequence

from .output_guard import disk_full_error, guard_output

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
    """Remove the temporary files and folders of killed atomic writes in
    ``folder`` (this host's, whose process is gone); returns their paths."""
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
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
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


def make_folders(folder: str) -> List[str]:
    """``os.makedirs(folder, exist_ok=True)``; returns the folders it
    created, outermost first, for :func:`remove_folders`."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for name in reversed(missing):
        try:
            os.mkdir(name)
        except FileExistsError:
            continue
        except OSError:
            remove_folders([m for m in reversed(missing) if m != name])
            raise
    return list(reversed(missing))


def remove_folders(created: Sequence[str]) -> None:
    """Remove the folders :func:`make_folders` created (innermost first),
    where they are empty."""
    for name in reversed(list(created)):
        try:
            os.rmdir(name)
        except OSError:
            pass


def _translate_failure(exc: BaseException, path: str) -> None:
    """Raise an OutputError for a full disk (else return)."""
    error = disk_full_error(exc, path) if isinstance(
        exc, Exception) else None
    if error is not None:
        raise error from None


@contextmanager
def _cleanup_on_failure(path: str, created: Sequence[str]) -> Iterator[None]:
    """On any failure: the folders created for ``path`` go, and a full disk
    is reported as one."""
    try:
        yield
    except BaseException as exc:
        remove_folders(created)
        _translate_failure(exc, path)
        raise


def create_temporary(path: str) -> str:
    """Create (empty, umask permissions) and return the temporary file of
    ``path``; stale temporaries of killed writes are removed first. The
    folder must exist."""
    folder = os.path.dirname(os.path.abspath(path))
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
    """Yield a temporary path in ``path``'s folder; rename it on success.
    Missing folders are created, and removed again on failure; a full disk
    raises :class:`~repvgg_mm.errors.OutputError`."""
    created = make_folders(os.path.dirname(os.path.abspath(path)))
    with _cleanup_on_failure(path, created):
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
    """:func:`repvgg_mm.io.output_guard.guard_output` of one file output
    without inputs (kept for its callers); creates nothing."""
    guard_output(path, what)


def _temporary_folder(path: str) -> str:
    """Create the temporary folder of ``path`` (named like a temporary
    file, so a killed write's folder is removed by the next write)."""
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    while True:
        tmp = temporary_path(path)
        try:
            os.mkdir(tmp)
        except FileExistsError:
            continue
        return tmp


@contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temporary folder beside ``path``; on success it becomes
    ``path`` (an existing ``path`` is replaced only then), on failure it is
    removed and ``path`` is left as it was (folders created for it too).

    The swap is two renames in the same folder: the old folder is moved
    aside, the new one moved in, then the old one is deleted.
    """
    path = os.path.abspath(path)
    created = make_folders(os.path.dirname(path))
    with _cleanup_on_failure(path, created):
        tmp = _temporary_folder(path)
        try:
            yield tmp
            if os.path.lexists(path):
                old = temporary_path(path + '.old')
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
    the temporary folder (and any folder created for them) is removed."""
    created = make_folders(os.path.dirname(os.path.abspath(paths[-1])))
    with _cleanup_on_failure(paths[-1], created):
        tmp_dir = _temporary_folder(paths[-1])
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
