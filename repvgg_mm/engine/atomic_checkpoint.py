"""Training checkpoints written atomically.

mmengine 0.10.7 saves a checkpoint by serialising it into memory and then
``LocalBackend.put`` (``mmengine/fileio/backends/local_backend.py``) writes
the bytes with ``open(filepath, 'wb')``, in place: a run killed during that
write leaves a truncated ``epoch_N.pth`` / ``iter_N.pth`` under its final
name, and ``last_checkpoint`` points at it. ``CheckpointHook`` and
``Runner.save_checkpoint`` pick their storage backend from the hook's
``backend_args``; the ``atomic_local`` backend registered here is mmengine's
local backend whose writes go to a temporary file in the same folder that
is then renamed (:mod:`repvgg_mm.io.atomic`).

mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step`` with
``max_keep_ckpts`` removes the oldest kept checkpoint *before* it saves the
new one: with ``max_keep_ckpts=1`` a run killed during the save (or one
whose save fails, e.g. on a full disk) has no checkpoint left, and
``--resume`` has nothing to resume. :class:`SafeCheckpointHook` is that
hook with the removal moved after the new checkpoint (and the
``last_checkpoint`` marker) is complete.

:func:`use_atomic_checkpoints` selects both in a config
(:func:`repvgg_mm.apis.train.training_config` does, for every config).
"""
from pathlib import Path
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

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


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that removes an old checkpoint
    (``max_keep_ckpts``) only after the new one is saved.

    Works around mmengine 0.10.7 ``CheckpointHook._save_checkpoint_with_step``
    deleting first: the step to drop is taken off ``keep_ckpt_ids`` here,
    so the parent's method finds room and deletes nothing; the file goes
    once the parent returned (checkpoint and ``last_checkpoint`` written).
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        stale = None
        if self.max_keep_ckpts > 0 and len(self.keep_ckpt_ids) == \
                self.max_keep_ckpts and self.keep_ckpt_ids[-1] != step:
            stale = self.keep_ckpt_ids.popleft()
        super()._save_checkpoint_with_step(runner, step, meta)
        if stale is None or not is_main_process():
            return
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(stale))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed: a folder
            self.file_backend.rmtree(path)


def _use_safe_hook(hook) -> None:
    kind = hook.get('type', 'CheckpointHook')
    if kind in ('CheckpointHook', CheckpointHook):
        hook['type'] = 'SafeCheckpointHook'
        if not getattr(_use_safe_hook, 'logged', False):
            _use_safe_hook.logged = True
            print_log(
                'default_hooks.checkpoint: CheckpointHook -> '
                'SafeCheckpointHook (same options; an old checkpoint is '
                'removed only after the new one is complete: mmengine '
                '0.10.7 removes it first)', logger='current')


def use_atomic_checkpoints(cfg) -> bool:
    """Make the config's ``CheckpointHook`` a :class:`SafeCheckpointHook`
    and save through ``atomic_local``; the storage is left alone (``False``)
    when the hook already names its own (``backend_args``,
    ``file_client_args`` or a remote ``out_dir``)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not hook:
        return False
    _use_safe_hook(hook)
    out_dir = str(hook.get('out_dir') or '')
    if hook.get('backend_args') or hook.get('file_client_args') or (
            '://' in out_dir):
        return False
    hook['backend_args'] = dict(backend=BACKEND)
    return True
