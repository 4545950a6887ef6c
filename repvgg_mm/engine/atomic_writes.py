"""mmengine's outputs that a kill or a full disk cannot destroy. In mmengine
0.10.7 ``LocalBackend.put`` writes in place (a kill leaves a truncated
``epoch_N.pth``), ``CheckpointHook`` with ``max_keep_ckpts`` removes the
oldest checkpoint *before* saving the new one, and ``DumpResults``
(``tools/test.py --out``) pickles straight into ``out_file_path``."""
from pathlib import Path
from typing import Union

from mmengine.dist import is_main_process
from mmengine.evaluator.metric import DumpResults
from mmengine.fileio import dump
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, METRICS

from ..io.atomic import atomic_output, atomic_write_bytes, atomic_write_text

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
    (``max_keep_ckpts``) only after the new one is saved: the step to drop
    is taken off ``keep_ckpt_ids`` first, so the parent deletes nothing."""

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


def use_atomic_checkpoints(cfg) -> bool:
    """Make the config's ``CheckpointHook`` a :class:`SafeCheckpointHook`
    saving through ``atomic_local``, unless it names its own storage."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not hook:
        return False
    # SafeCheckpointHook overrides mmengine's private step save (0.8 -
    # 0.10.7): an mmengine without it keeps its own CheckpointHook
    private = callable(getattr(CheckpointHook, '_save_checkpoint_with_step',
                               None))
    if private and hook.get('type', 'CheckpointHook') in ('CheckpointHook',
                                                          CheckpointHook):
        hook['type'] = 'SafeCheckpointHook'
        print_log('default_hooks.checkpoint: CheckpointHook -> '
                  'SafeCheckpointHook (same options; an old checkpoint is '
                  'removed only after the new one is complete: mmengine '
                  '0.10.7 removes it first)', logger='current')
    if hook.get('backend_args') or hook.get('file_client_args') or (
            '://' in str(hook.get('out_dir') or '')):
        return False
    hook['backend_args'] = dict(backend=BACKEND)
    return True


@METRICS.register_module()
class AtomicDumpResults(DumpResults):
    """``DumpResults`` whose file appears only when it is complete."""

    def compute_metrics(self, results: list) -> dict:
        with atomic_output(self.out_file_path) as tmp:
            dump(results, tmp, file_format='pkl')
        print_log(f'Results has been saved to {self.out_file_path}.',
                  logger='current')
        return {}
