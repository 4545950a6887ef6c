"""Reading and writing checkpoints safely.

* :func:`load_checkpoint_file` reads with ``weights_only=True`` so a
  checkpoint can never execute code; the few non-tensor types mmengine puts
  in its checkpoints (``HistoryBuffer`` and the numpy types inside it) are
  allowed for that read only (:func:`mmengine_types_allowed`, a
  ``torch.serialization.safe_globals`` scope; torch's global list is never
  edited). ``unsafe=True`` is the explicit escape hatch for old pickles
  from trusted sources.
* :func:`full_unpickling_by_default` is that escape hatch for the loads
  mmengine does itself (``Runner.resume`` / ``load_from``, ``init_cfg``);
  those go through :mod:`repvgg_mm.engine.checkpoint_loader`, which reads
  with :func:`load_checkpoint_file` too.
* :func:`atomic_save` writes to a temporary file and renames it, so an
  interrupted run never leaves a truncated checkpoint.
"""
import contextlib
import os
import pickle
import pickletools
import re
import zipfile
from typing import Any, Iterator, List, Optional

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

from ..errors import CheckpointError
from .atomic import atomic_output

#: torch's switch (torch >= 2.6, ``torch.serialization.load``): a
#: ``torch.load`` that does not pass ``weights_only`` unpickles fully
FORCE_NO_WEIGHTS_ONLY = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


def _numpy_types() -> List[Any]:
    types = [np.ndarray, np.dtype]
    try:  # numpy >= 2 moved the pickling helpers to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    types += [_reconstruct, scalar]
    types += [type(np.dtype(t)) for t in
              ('float64', 'float32', 'float16', 'int64', 'int32', 'int8',
               'uint8', 'bool')]
    return types


def _history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a weights-only load may perform.

    ``HistoryBuffer.__getstate__`` (mmengine 0.10.7) pickles its statistics
    methods, which pickle protocol 2 writes as ``getattr(HistoryBuffer,
    'mean')``; every mmengine checkpoint's message hub holds such buffers.
    Allowing the builtin ``getattr`` would let a checkpoint reach arbitrary
    attributes, so this stand-in resolves only the statistics methods
    (``min``, ``max``, ``current``, ``mean``) defined on ``HistoryBuffer``.
    """
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)  # custom statistics
    if (owner is HistoryBuffer and name in allowed
            and callable(HistoryBuffer.__dict__.get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a weights-only load')


def mmengine_safe_globals() -> List[Any]:
    """Non-tensor types found in mmengine training checkpoints."""
    getattr_names = ('__builtin__.getattr', 'builtins.getattr')
    return [HistoryBuffer, ConfigDict] + _numpy_types() + [
        (_history_buffer_method, name) for name in getattr_names]


@contextlib.contextmanager
def mmengine_types_allowed() -> Iterator[None]:
    """Inside the block, ``torch.load(weights_only=True)`` also reads the
    types of :func:`mmengine_safe_globals` (mmengine 0.10.7 training
    checkpoints); torch's list is restored on exit."""
    with torch.serialization.safe_globals(mmengine_safe_globals()):
        yield


def _unpickler_reason(exc: Exception) -> str:
    """The line of torch's long weights-only message that names the cause."""
    text = str(exc)
    match = re.search(r'(Trying to load unsupported GLOBAL [^\n]+)', text)
    if match:
        return match.group(1).strip()
    match = re.search(r'WeightsUnpickler error:\s*(.+)', text)
    if match:  # drop torch's advice to allowlist the global
        return match.group(1).split('. Please use')[0].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _is_refused_object(reason: str) -> bool:
    """Whether the weights-only unpickler refused an object (vs. garbage)."""
    return any(s in reason.lower() for s in (
        'unsupported global', 'not allowed', 'unrecognized function'))


def _pickle_streams(path: str) -> List[bytes]:
    """The pickle data of a checkpoint file: ``data.pkl`` of torch's zip
    format, else the file itself (legacy format / a plain pickle)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(name) for name in archive.namelist()
                    if name.endswith('.pkl')]
    with open(path, 'rb') as f:
        return [f.read()]


def _globals_in(data: bytes) -> List[str]:
    """``module.name`` of every global the pickles in ``data`` import,
    read without unpickling (``pickletools``); stops at unreadable bytes."""
    found, strings, pos = [], [], 0
    while pos < len(data):
        try:
            for opcode, arg, end in pickletools.genops(data[pos:]):
                if opcode.name in ('GLOBAL', 'INST'):
                    found.append(str(arg).replace(' ', '.'))
                elif opcode.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    found.append(f'{strings[-2]}.{strings[-1]}')
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == 'STOP':
                    pos += end + 1 if end is not None else len(data)
                    break
            else:
                break
        except Exception:  # noqa: BLE001 - garbage: what was read counts
            break
    return found


#: modules whose globals torch's weights-only unpickler allows (a plain,
#: non-zip pickle cannot be checked with torch's public scanner)
_SAFE_MODULES = ('torch.', 'collections.OrderedDict', '_codecs.encode')


def _refused_globals(path: str) -> Optional[List[str]]:
    """Globals of ``path``'s pickles that a weights-only load refuses
    (``None``: the file could not be read as a pickle at all)."""
    try:
        if zipfile.is_zipfile(path):  # torch.save's format: torch's scanner
            with mmengine_types_allowed():
                return list(dict.fromkeys(
                    torch.serialization.get_unsafe_globals_in_checkpoint(
                        path)))
        streams = _pickle_streams(path)
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError,
            pickle.UnpicklingError, ValueError):
        return None
    allowed = {f'{getattr(obj, "__module__", "")}.'
               f'{getattr(obj, "__qualname__", "")}'
               for obj in mmengine_safe_globals()
               if not isinstance(obj, tuple)}
    allowed.update(('builtins.getattr', '__builtin__.getattr'))
    refused = []
    for data in streams:
        for name in _globals_in(data):
            if name not in allowed and not name.startswith(_SAFE_MODULES) \
                    and name not in refused:
                refused.append(name)
    return refused


def _unsafe_objects_error(path: str, what: str) -> CheckpointError:
    return CheckpointError(
        f'checkpoint "{path}" holds Python objects that safe loading '
        f'(torch.load with weights_only=True) refuses: {what}. Unpickling '
        f'them could run arbitrary code, so the file was not loaded and '
        f'nothing ran. If, and only if, you trust the source of this file, '
        f'pass --unsafe-load (tools; unsafe_load=True in Python; for '
        f'init_cfg / load_from set {FORCE_NO_WEIGHTS_ONLY}=1).')


def load_checkpoint_file(path: str, unsafe: bool = False,
                         map_location='cpu') -> Any:
    """Load a checkpoint file with clear errors.

    Raises:
        CheckpointError: missing, truncated/corrupt, or (in safe mode) holding
            objects outside the allowlist (named as such, never "corrupt").
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint "{path}" does not exist.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint "{path}" is empty (0 bytes).')
    try:
        if unsafe:
            return torch.load(path, map_location=map_location,
                              weights_only=False)
        with mmengine_types_allowed():
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError,
            IndexError, KeyError, TypeError, AttributeError, OSError,
            zipfile.BadZipFile, UnicodeDecodeError, MemoryError) as exc:
        # Garbage bytes make the unpickler fail in many ways (EOFError,
        # BadZipFile, RuntimeError, even IndexError inside torch's
        # weights-only unpickler); a refused object is told apart by
        # torch's message or by the globals the pickle names.
        reason = _unpickler_reason(exc)
        if not unsafe:
            if _is_refused_object(reason):
                named = re.search(r'GLOBAL (\S+)', reason)
                raise _unsafe_objects_error(
                    path, f'it imports {named.group(1)}' if named else
                    reason.rstrip('.')) from None
            refused = _refused_globals(path)
            if refused:
                raise _unsafe_objects_error(
                    path, 'it imports ' + ', '.join(refused[:5])) from None
        raise CheckpointError(
            f'checkpoint "{path}" is corrupt or truncated (torch.load: '
            f'{reason}). Write it again, or copy it again from its '
            f'source.') from None


def unpickling_fully_requested() -> bool:
    """Whether torch's switch (:data:`FORCE_NO_WEIGHTS_ONLY`) is set: the
    reads of mmengine's loader (``load_from``, ``init_cfg``, resume) then
    unpickle fully, as a plain ``torch.load`` would."""
    return os.environ.get(FORCE_NO_WEIGHTS_ONLY, '').lower() in ('1', 'true')


@contextlib.contextmanager
def full_unpickling_by_default() -> Iterator[None]:
    """Inside the block, mmengine's checkpoint reads (``load_from``,
    resume, ``init_cfg``) and ``torch.load`` calls that do not pass
    ``weights_only`` unpickle fully, as before torch 2.6; calls that pass
    it (this project's :func:`load_checkpoint_file`) are unchanged. For
    ``--unsafe-load`` only: a full unpickling runs whatever code the file
    holds."""
    previous = os.environ.get(FORCE_NO_WEIGHTS_ONLY)
    os.environ[FORCE_NO_WEIGHTS_ONLY] = '1'
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FORCE_NO_WEIGHTS_ONLY]
        else:
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
