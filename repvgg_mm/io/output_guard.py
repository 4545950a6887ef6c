"""The one check every writer runs on its outputs before any work.

:func:`guard_outputs` (and :func:`guard_output` for one) resolves each
output's real path and raises :class:`~repvgg_mm.errors.OutputError`, one
paragraph naming the option and the fix, when an output

* is, or has a sidecar (``X.bin`` of ``X.xml``, the ``.py`` of a deploy
  checkpoint) that is, one of the run's inputs (checkpoint, config,
  calibration data) or another output of the same run;
* is or has a sidecar that is a special file (device, FIFO, socket) or a
  link into ``/proc`` / ``/dev/fd`` (``/proc/self/fd/N``, ``/dev/stdout``);
* has a sidecar that exists while the output itself does not: it was not
  written by this tool for this output;
* is a folder where a file is expected, or the reverse, or lies under a
  regular file;
* cannot be created: no file can be made in the nearest existing folder
  (read-only, permissions). Nothing is created by the check itself (the
  writers of :mod:`repvgg_mm.io.atomic` create missing folders at write time
  and remove them again on failure).

:func:`disk_full_error` recognises a full disk (``ENOSPC``, and the
wrappers of torch's and OpenVINO's writers) for the atomic writers.
"""
import errno
import os
import os.path as osp
import shutil
import stat
from typing import (Iterable, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple, Union)

from ..errors import OutputError

#: folders whose entries are links to open files, not places to write
PROC_PREFIXES = ('/proc/', '/dev/fd/', '/dev/stdin', '/dev/stdout',
                 '/dev/stderr')
#: texts of full-disk errors that lost their errno on the way; the writer
#: failures count as a full disk when the folder has almost no space left:
#: torch 2.14's ``PytorchStreamWriter`` says "unexpected pos" / "file write
#: failed", OpenVINO 2026.4's ``save_model`` "basic_ios::clear: iostream
#: error"
DISK_FULL_TEXTS = ('no space left on device', 'enospc',
                   'disk quota exceeded')
WRITER_FAILURE_TEXTS = ('unexpected pos', 'file write failed',
                        'iostream error')


class Output(NamedTuple):
    """One output of a run. ``what``: the option that names it (``OUT``,
    ``--json``); ``sidecars``: files written with it; ``folder``: the
    output is a folder (work dir, dataset)."""

    path: str
    what: str = 'OUT'
    sidecars: Tuple[str, ...] = ()
    folder: bool = False


Inputs = Union[Mapping[str, Optional[str]], Iterable[Tuple[str, str]]]


def _kind(path: str) -> Optional[str]:
    """'file', 'folder', a special kind, or None (missing)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISDIR(mode):
        return 'folder'
    for test, name in ((stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device'),
                       (stat.S_ISFIFO, 'FIFO (named pipe)'),
                       (stat.S_ISSOCK, 'socket')):
        if test(mode):
            return name
    return 'special file'


def _same(a: str, b: str) -> bool:
    if osp.realpath(a) == osp.realpath(b):
        return True
    try:
        return osp.samefile(a, b)
    except OSError:
        return False


def _in_proc(path: str) -> bool:
    for candidate in (osp.abspath(path), osp.realpath(path)):
        if candidate.startswith(PROC_PREFIXES) or candidate in (
                '/proc', '/dev/fd'):
            return True
    return False


def _nearest_existing(folder: str) -> str:
    while not osp.lexists(folder):
        parent = osp.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _can_create_in(folder: str) -> Optional[str]:
    """None if a file can be created in ``folder``, else the reason."""
    probe = osp.join(folder, f'.repvgg_mm-probe-{os.getpid()}')
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.remove(probe)
    return None


def _check_place(path: str, what: str, folder: bool) -> None:
    """The output's own kind, and that it can be created."""
    kind = _kind(path)
    if kind not in (None, 'file', 'folder'):
        raise OutputError(
            f'{what} "{path}" is a {kind}, not a regular file; writing there '
            f'would replace it (or hang). Give a regular file name.')
    if folder and kind == 'file':
        raise OutputError(f'{what} "{path}" is a file, but a folder is '
                          f'written there. Choose another {what}.')
    if not folder and kind == 'folder':
        raise OutputError(
            f'{what} "{path}" is a folder; give a file name (e.g. '
            f'{osp.join(path, "output" + (osp.splitext(path)[1] or ""))}).')
    target = osp.realpath(path) if kind == 'folder' else osp.dirname(
        osp.realpath(path))
    existing = _nearest_existing(target)
    if not osp.isdir(existing):
        raise OutputError(
            f'cannot write {what} "{path}": "{existing}" is a file, not a '
            f'folder. Choose another {what}.')
    reason = _can_create_in(existing)
    if reason:
        raise OutputError(
            f'cannot write {what} "{path}": no file can be created in '
            f'"{existing}" ({reason}). Choose an {what} in a folder you can '
            f'write. Nothing was done.')


def _input_pairs(inputs: Inputs) -> List[Tuple[str, str]]:
    items = inputs.items() if isinstance(inputs, Mapping) else inputs
    return [(label, str(p)) for label, p in items if p]


def guard_output(path: str, what: str = 'OUT', inputs: Inputs = (),
                 sidecars: Sequence[str] = (), folder: bool = False) -> None:
    """Check one output (see the module doc); raises :class:`OutputError`."""
    guard_outputs([Output(path, what, tuple(sidecars), folder)], inputs)


def guard_outputs(outputs: Sequence[Output], inputs: Inputs = ()) -> None:
    """Check every output of a run before any work (see the module doc).

    ``inputs``: ``{label: path}`` (or pairs) of the files the run reads;
    ``None`` paths are skipped. Raises :class:`OutputError`.
    """
    pairs = _input_pairs(inputs)
    seen: List[Tuple[str, str]] = []
    for out in outputs:
        if not out.path:
            raise OutputError(f'{out.what} is empty; give a path.')
        for name in (out.path, ) + tuple(out.sidecars):
            own = '' if name == out.path else f' (its file "{name}")'
            if _in_proc(name):
                raise OutputError(
                    f'{out.what} "{out.path}"{own} is a link into /proc or '
                    f'/dev/fd (an open file of a process), not a place to '
                    f'write. Give a regular file name.')
            for label, given in pairs:
                if _same(name, given):
                    raise OutputError(
                        f'{out.what} "{out.path}" would overwrite the input '
                        f'{label} "{given}"{own}; '
                        f'a tool never overwrites its input. Choose another '
                        f'{out.what}.')
            for label, other in seen:
                if _same(name, other):
                    raise OutputError(
                        f'{out.what} "{out.path}" and {label} "{other}" are '
                        f'the same file. Give them different names.')
        _check_place(out.path, out.what, out.folder)
        main_exists = osp.lexists(out.path)
        for side in out.sidecars:
            kind = _kind(side)
            if kind not in (None, 'file'):
                raise OutputError(
                    f'{out.what} "{out.path}" is written with "{side}", '
                    f'which is a {kind}. Move it away or choose another '
                    f'{out.what}.')
            if kind == 'file' and not main_exists:
                raise OutputError(
                    f'{out.what} "{out.path}" is written with "{side}", '
                    f'which exists but was not written with "{out.path}" '
                    f'(that file does not exist), so it may be someone '
                    f'else\'s file. Remove or rename "{side}", or choose '
                    f'another {out.what}.')
        seen += [(out.what, out.path)] + [(out.what, s) for s in out.sidecars]


def is_disk_full(exc: BaseException, folder: Optional[str] = None) -> bool:
    """``exc`` (or what it wraps) is a full disk / quota."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC,
                                                      errno.EDQUOT):
            return True
        text = str(exc).lower()
        if any(t in text for t in DISK_FULL_TEXTS):
            return True
        if folder and any(t in text for t in WRITER_FAILURE_TEXTS):
            try:  # torch lost the errno; a nearly full disk says it
                return shutil.disk_usage(folder).free < 2**24
            except OSError:
                return False
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(exc: BaseException, path: str,
                    needed: Optional[int] = None) -> Optional[OutputError]:
    """An :class:`OutputError` naming the full disk at ``path`` if ``exc``
    is one, else None."""
    folder = _nearest_existing(osp.dirname(osp.abspath(path)))
    if not is_disk_full(exc, folder):
        return None
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free'
    except OSError:
        free = 'free space unknown'
    need = f', about {needed / 2**20:.1f} MiB needed' if needed else ''
    return OutputError(
        f'the disk is full: writing "{path}" failed ({free} in "{folder}"'
        f'{need}). Nothing was written. Free some space or write to another '
        f'disk.')
