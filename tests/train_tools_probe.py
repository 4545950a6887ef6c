"""Test-only hook: what each rank of a tools/train.py run saw and did.

Imported by the tiny configs of tests/test_train_tools.py through
``custom_imports`` (the tests put this folder on PYTHONPATH). Every rank
writes ``probe_rank{R}.pt`` into ``out_dir`` with
* ``resumed``: iteration, epoch and optimizer state at ``before_train``
  (after mmengine resumed, if it did);
* ``params``: the final parameters (DDP-unwrapped);
* ``images``: ``{epoch: [image paths]}`` this rank trained on;
* ``checkpoint_writes``: the checkpoint files this process wrote.
"""
import copy
import os.path as osp

import mmengine.runner.runner as runner_module
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class TrainProbeHook(Hook):

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.record = dict(images={}, checkpoint_writes=[])

    def before_run(self, runner) -> None:
        # Runner.save_checkpoint calls this module-level function to write.
        original = runner_module.save_checkpoint
        writes = self.record['checkpoint_writes']

        def recording_save(checkpoint, filename, *args, **kwargs):
            writes.append(osp.basename(filename))
            return original(checkpoint, filename, *args, **kwargs)

        runner_module.save_checkpoint = recording_save

    def before_train(self, runner) -> None:
        optimizer = runner.optim_wrapper.optimizer
        self.record['resumed'] = dict(
            iter=runner.iter, epoch=runner.epoch,
            # a copy: training updates the momentum buffers in place
            optimizer=copy.deepcopy(optimizer.state_dict()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.record['images'].setdefault(runner.epoch, []).extend(
            s.img_path for s in data_batch['data_samples'])

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self.record['params'] = {
            k: v.detach().clone() for k, v in model.named_parameters()
        }
        self.record['final_iter'] = runner.iter
        torch.save(self.record,
                   osp.join(self.out_dir, f'probe_rank{get_rank()}.pt'))
