"""Training checkpoints written atomically.

mmengine 0.10.7 saves a checkpoint by serialising it into memory and then
``LocalBackend.put`` (``mmengine/fileio/backends/local_backend.py``) writes
the bytes with ``open(filepath, 'wb')``, in place: a run killed during that
write leaves a truncated ``epoch_N.pth`` / ``iter_N.pth`` under its final
name, and ``last_checkpoint`` points at it. ``CheckpointHook`` and
``Runner.save_checkpoint`` pick their storage backend from the hook's
``backend_args``; the ``atomic_local`` backend registered here is mmengine's
local backend whose writes go to a temporary file in the same folder that
is then renamed (:mod:`repvgg_mm.io.atomic`). :func:`use_atomic_checkpoints`
selects it in a config (``tools/train.py`` does).
"""
from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend, register_backend

from ..io.atomic import atomic_write_bytes, atomic_write_text

BACKEND = 'atomic_local'


@register_backend(BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_text(obj, str(filepath), encoding=encoding)


def use_atomic_checkpoints(cfg) -> bool:
    """Make the config's ``CheckpointHook`` save through ``atomic_local``;
    ``False`` when it already names its own storage (``backend_args``,
    ``file_client_args`` or a remote ``out_dir``) and is left alone."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not hook:
        return False
    out_dir = str(hook.get('out_dir') or '')
    if hook.get('backend_args') or hook.get('file_client_args') or (
            '://' in out_dir):
        return False
    hook['backend_args'] = dict(backend=BACKEND)
    return True
