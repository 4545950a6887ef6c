"""Reading and writing checkpoints safely.

* :func:`load_checkpoint_file` reads with ``weights_only=True`` so a
  checkpoint can never execute code; the few non-tensor types mmengine puts
  in its checkpoints (``HistoryBuffer`` and the numpy types inside it) are
  allowed explicitly. ``unsafe=True`` is the explicit escape hatch for old
  pickles from trusted sources.
* :func:`allow_mmengine_checkpoint_types` registers that allowlist globally.
  mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch
  2.6 that defaults to ``True`` and resuming from an mmengine checkpoint
  fails on ``HistoryBuffer`` (REFERENCE §6). Allowing exactly those types
  fixes resume without turning arbitrary unpickling back on.
* :func:`atomic_save` writes to a temporary file and renames it, so an
  interrupted run never leaves a truncated checkpoint.
"""
import os
import pickle
import tempfile
import zipfile
from typing import Any, List

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit; message says why."""


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


def mmengine_safe_globals() -> List[Any]:
    """Non-tensor types found in mmengine training checkpoints."""
    from mmengine.logging import HistoryBuffer
    from mmengine.config import ConfigDict
    return [HistoryBuffer, ConfigDict] + _numpy_types()


def allow_mmengine_checkpoint_types() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints."""
    torch.serialization.add_safe_globals(mmengine_safe_globals())


def load_checkpoint_file(path: str, unsafe: bool = False,
                         map_location='cpu') -> Any:
    """Load a checkpoint file with clear errors.

    Raises:
        CheckpointError: missing, truncated/corrupt, or (in safe mode) holding
            objects outside the allowlist.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint "{path}" does not exist.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint "{path}" is empty (0 bytes).')
    try:
        if unsafe:
            return torch.load(path, map_location=map_location,
                              weights_only=False)
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as exc:
        if 'weights_only' in str(exc) or 'Weights only' in str(exc):
            raise CheckpointError(
                f'checkpoint "{path}" holds Python objects that are not '
                f'plain tensors or mmengine types, so it was not loaded (a '
                f'pickle can execute code). If you trust its source, pass '
                f'--unsafe-load. Details: {str(exc).splitlines()[0]}'
            ) from None
        raise CheckpointError(
            f'checkpoint "{path}" is corrupt or truncated: {exc}') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f'checkpoint "{path}" is corrupt or truncated (torch.load: '
            f'{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})'
        ) from None


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` via a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
