"""The check every writer runs on its outputs (and sidecars: the ``X.bin``
of ``X.xml``) before any work, creating nothing; and the full-disk error."""
import errno
import os
import os.path as osp
import shutil
import stat
import tempfile
from typing import (Iterable, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple, Union)

from ..errors import OutputError

#: folders whose entries are links to open files, not places to write
PROC_PREFIXES = ('/proc/', '/dev/fd/', '/dev/stdin', '/dev/stdout',
                 '/dev/stderr')
#: full-disk errors without errno; the writer failures count on a nearly
#: full disk: torch 2.14's ``PytorchStreamWriter`` says "unexpected pos" /
#: "file write failed", OpenVINO 2026.4's ``save_model`` "iostream error"
DISK_FULL_TEXTS = ('no space left on device', 'enospc', 'disk quota exceeded')
WRITER_FAILURE_TEXTS = ('unexpected pos', 'file write failed',
                        'iostream error')
_KINDS = {stat.S_IFREG: 'file', stat.S_IFDIR: 'folder',
          stat.S_IFCHR: 'character device', stat.S_IFBLK: 'block device',
          stat.S_IFIFO: 'FIFO (named pipe)', stat.S_IFSOCK: 'socket'}


class Output(NamedTuple):
    """One output of a run: ``what`` names its option (``OUT``,
    ``--json``); ``folder``: a folder is written (work dir, dataset)."""

    path: str
    what: str = 'OUT'
    sidecars: Tuple[str, ...] = ()
    folder: bool = False


Inputs = Union[Mapping[str, Optional[str]], Iterable[Tuple[str, str]]]


def file_kind(path: str) -> Optional[str]:
    """'file', 'folder', a special kind, or None (missing)."""
    try:
        return _KINDS.get(stat.S_IFMT(os.stat(path).st_mode), 'special file')
    except OSError:
        return None


def _same(a: str, b: str) -> bool:
    try:
        return osp.realpath(a) == osp.realpath(b) or osp.samefile(a, b)
    except OSError:
        return False


def _nearest_existing(folder: str) -> str:
    while not osp.lexists(folder) and osp.dirname(folder) != folder:
        folder = osp.dirname(folder)
    return folder


def _check_place(path: str, what: str, folder: bool) -> None:
    """A file or folder as expected, and that it can be created."""
    kind = file_kind(path)
    if folder and kind == 'file':
        raise OutputError(f'{what} "{path}" is a file, but a folder is '
                          f'written there. Choose another {what}.')
    if not folder and kind == 'folder':
        raise OutputError(
            f'{what} "{path}" is a folder; give a file name (e.g. '
            f'{osp.join(path, "output" + (osp.splitext(path)[1] or ""))}).')
    existing = _nearest_existing(osp.realpath(path) if kind == 'folder' else
                                 osp.dirname(osp.realpath(path)))
    if not osp.isdir(existing):
        raise OutputError(
            f'cannot write {what} "{path}": "{existing}" is a file, not a '
            f'folder. Choose another {what}.')
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise OutputError(
            f'cannot write {what} "{path}": no file can be created in '
            f'"{existing}" ({exc.strerror or exc}). Choose an {what} in a '
            f'folder you can write. Nothing was done.') from None


def guard_output(path: str, what: str = 'OUT', inputs: Inputs = (),
                 sidecars: Sequence[str] = (), folder: bool = False) -> None:
    """:func:`guard_outputs` of one output."""
    guard_outputs([Output(path, what, tuple(sidecars), folder)], inputs)


def guard_outputs(outputs: Sequence[Output], inputs: Inputs = ()) -> None:
    """Check every output of a run before any work; ``inputs`` are
    ``{label: path}`` (or pairs) of what the run reads (``None``: skip)."""
    items = inputs.items() if isinstance(inputs, Mapping) else inputs
    pairs = [(label, str(p)) for label, p in items if p]
    seen: List[Tuple[str, str]] = []
    for out in outputs:
        if not out.path:
            raise OutputError(f'{out.what} is empty; give a path.')
        for name in (out.path, ) + tuple(out.sidecars):
            own = '' if name == out.path else f' (its file "{name}")'
            if any(p.startswith(PROC_PREFIXES) or p in ('/proc', '/dev/fd')
                   for p in (osp.abspath(name), osp.realpath(name))):
                raise OutputError(
                    f'{out.what} "{out.path}"{own} is a link into /proc or '
                    f'/dev/fd (an open file of a process), not a place to '
                    f'write. Give a regular file name.')
            for i, (label, other) in enumerate(pairs + seen):
                if not _same(name, other):
                    continue
                if i >= len(pairs):
                    raise OutputError(
                        f'{out.what} "{out.path}" and {label} "{other}" are '
                        f'the same file. Give them different names.')
                raise OutputError(
                    f'{out.what} "{out.path}" would overwrite the input '
                    f'{label} "{other}"{own}; a tool never overwrites its '
                    f'input. Choose another {out.what}.')
            kind = file_kind(name)
            if kind not in (None, 'file') and (own or kind != 'folder'):
                raise OutputError(
                    f'{out.what} "{out.path}"{own} is a {kind}, not a regular '
                    f'file; writing there would replace it (or hang). Choose '
                    f'another {out.what}.')
            if own and kind == 'file' and not osp.lexists(out.path):
                raise OutputError(
                    f'{out.what} "{out.path}" is written with "{name}", '
                    f'which exists but was not written with "{out.path}" '
                    f'(that file does not exist), so it may be someone '
                    f'else\'s file. Remove or rename "{name}", or choose '
                    f'another {out.what}.')
        _check_place(out.path, out.what, out.folder)
        seen += [(out.what, p) for p in (out.path, ) + tuple(out.sidecars)]


def _is_disk_full(exc: Optional[BaseException], folder: str) -> bool:
    while exc is not None:
        text = str(exc).lower()
        if getattr(exc, 'errno', None) in (errno.ENOSPC, errno.EDQUOT) or any(
                t in text for t in DISK_FULL_TEXTS):
            return True
        if any(t in text for t in WRITER_FAILURE_TEXTS):
            try:  # the writer lost the errno; a nearly full disk says it
                return shutil.disk_usage(folder).free < 2**24
            except OSError:
                return False
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(exc: BaseException, path: str) -> Optional[OutputError]:
    """The :class:`OutputError` of a full disk if ``exc`` is one."""
    folder = _nearest_existing(osp.dirname(osp.abspath(path)))
    if not _is_disk_full(exc, folder):
        return None
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free'
    except OSError:
        free = 'free space unknown'
    return OutputError(
        f'the disk is full: writing "{path}" failed ({free} in "{folder}"). '
        f'Nothing was written. Free some space or write to another disk.')
