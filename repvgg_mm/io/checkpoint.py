"""Reading checkpoints with ``weights_only=True`` (plus the types of mmengine
0.10.7 checkpoints, for that read only; ``unsafe=True`` for trusted old
pickles) and writing them atomically."""
import contextlib
import os
import pickle
import pickletools
import re
import zipfile
from typing import Any, BinaryIO, Iterator, List

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2 moved the pickling helpers to numpy._core
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

from ..errors import CheckpointError
from .atomic import atomic_output
from .output_guard import file_kind

#: torch's switch (torch >= 2.6, ``torch.serialization.load``): a
#: ``torch.load`` that does not pass ``weights_only`` unpickles fully
FORCE_NO_WEIGHTS_ONLY = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
#: globals torch's weights-only unpickler allows (scan of a non-zip pickle)
_SAFE_MODULES = ('torch.', 'collections.OrderedDict', '_codecs.encode')


def _history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a weights-only load may perform: mmengine
    0.10.7's ``HistoryBuffer`` pickles ``getattr(HistoryBuffer, 'mean')``;
    the builtin would reach any attribute."""
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)  # custom statistics
    if (owner is HistoryBuffer and name in allowed
            and callable(HistoryBuffer.__dict__.get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a weights-only load')


def mmengine_safe_globals() -> List[Any]:
    """Non-tensor types found in mmengine training checkpoints."""
    dtypes = [type(np.dtype(t)) for t in
              'float64 float32 float16 int64 int32 int8 uint8 bool'.split()]
    return [HistoryBuffer, ConfigDict, np.ndarray, np.dtype, _reconstruct,
            scalar] + dtypes + [(_history_buffer_method, name) for name in
                                ('__builtin__.getattr', 'builtins.getattr')]


def _globals_in(stream: BinaryIO) -> List[str]:
    """``module.name`` of every global the pickles in ``stream`` import."""
    found, strings = [], []
    # up to the end or garbage: what was read counts
    with contextlib.suppress(Exception):
        while True:  # one pickle after another (torch's legacy format)
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name in ('GLOBAL', 'INST'):
                    found.append(str(arg).replace(' ', '.'))
                elif opcode.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    found.append(f'{strings[-2]}.{strings[-1]}')
                if isinstance(arg, str):
                    strings.append(arg)
    return found


def _refused_globals(path: str) -> List[str]:
    safe = mmengine_safe_globals()
    try:
        if zipfile.is_zipfile(path):  # torch.save's format: torch's scanner
            with torch.serialization.safe_globals(safe):
                return torch.serialization.get_unsafe_globals_in_checkpoint(
                    path)  # a list without repeats
        with open(path, 'rb') as f:
            found = _globals_in(f)
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError,
            pickle.UnpicklingError, ValueError):
        return []
    allowed = {obj[1] if isinstance(obj, tuple) else
               f'{obj.__module__}.{obj.__qualname__}' for obj in safe}
    return list(dict.fromkeys(
        name for name in found
        if name not in allowed and not name.startswith(_SAFE_MODULES)))


def _unpickler_reason(exc: Exception) -> str:
    """The cause in torch's weights-only message, without its advice."""
    text = str(exc)
    match = re.search(r'WeightsUnpickler error:\s*(.+)', text)
    if match:
        return match.group(1).split('. Please use')[0].strip()
    return (text.strip().splitlines() or [type(exc).__name__])[0].strip()


def load_checkpoint_file(path: str, unsafe: bool = False,
                         map_location='cpu') -> Any:
    """Load a checkpoint; a :class:`CheckpointError` says what is wrong."""
    kind = file_kind(path)
    if kind is None:
        raise CheckpointError(f'checkpoint "{path}" does not exist.')
    if kind != 'file':
        raise CheckpointError(f'checkpoint "{path}" is a {kind}, not a '
                              f'regular file. Give a checkpoint file.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint "{path}" is empty (0 bytes).')
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(path, map_location=map_location,
                              weights_only=not unsafe)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError,
            IndexError, KeyError, TypeError, AttributeError, OSError,
            zipfile.BadZipFile, UnicodeDecodeError, MemoryError) as exc:
        # garbage makes the unpickler fail in many ways; a refused object
        # is told apart by the globals the pickle names
        reason = _unpickler_reason(exc)
        refused = [] if unsafe else _refused_globals(path)
        if refused or 'not allowed in a weights-only load' in reason:
            what = ('it imports ' + ', '.join(refused[:5]) if refused else
                    reason.rstrip('.'))
            raise CheckpointError(
                f'checkpoint "{path}" holds Python objects that safe loading '
                f'(torch.load with weights_only=True) refuses: {what}. '
                f'Unpickling them could run arbitrary code, so the file was '
                f'not loaded and nothing ran. If, and only if, you trust the '
                f'source of this file, pass `unsafe_load=True` (for init_cfg '
                f'/ load_from set {FORCE_NO_WEIGHTS_ONLY}=1).') from None
        raise CheckpointError(
            f'checkpoint "{path}" is corrupt or truncated (torch.load: '
            f'{reason}). Write it again, or copy it again from its '
            f'source.') from None


def unpickling_fully_requested() -> bool:
    """Whether torch's switch :data:`FORCE_NO_WEIGHTS_ONLY` is set."""
    return os.environ.get(FORCE_NO_WEIGHTS_ONLY, '').lower() in ('1', 'true')


@contextlib.contextmanager
def full_unpickling_by_default() -> Iterator[None]:
    """Inside the block, ``torch.load`` calls without ``weights_only``
    (mmengine's ``load_from``, resume, ``init_cfg``) unpickle fully."""
    previous = os.environ.get(FORCE_NO_WEIGHTS_ONLY)
    os.environ[FORCE_NO_WEIGHTS_ONLY] = '1'
    try:
        yield
    finally:
        os.environ.pop(FORCE_NO_WEIGHTS_ONLY)
        if previous is not None:
            os.environ[FORCE_NO_WEIGHTS_ONLY] = previous


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` via a temporary file in the same folder."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def state_dict_of(checkpoint: Any) -> dict:
    """The model weights of a loaded checkpoint (mmengine or plain)."""
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model'):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                return checkpoint[key]
        if checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
            return checkpoint
    raise CheckpointError(
        'no state dict found in the checkpoint: expected a dict of tensors or '
        'a dict with a "state_dict" (mmengine) or "model" entry.')
