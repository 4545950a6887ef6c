"""``SwitchToDeployHook``: validate, test and ship the converted RepVGG model.

Use it through ``custom_hooks=[dict(type='SwitchToDeployHook')]``.

How it stays correct (mmengine 0.10.7 behaviour, see docs/design.md):

* It never converts the model the runner trains or loaded. At the start of a
  test or validation epoch it converts a *deep copy* of the (unwrapped)
  model and points ``runner.model`` at the copy; the loops read
  ``runner.model`` on every iteration (mmengine 0.10.7 ``ValLoop`` /
  ``TestLoop``). At the end of the epoch the original is put back.
* It converts at ``before_test_epoch`` / ``before_val_epoch``, i.e. after
  ``Runner.test()`` has loaded the checkpoint (``before_run`` fires before
  loading, and loading is non-strict by default).
* Its priority is ``LOW`` (70), so in ``before_*_epoch`` it runs after
  ``EMAHook`` (``NORMAL``, 50) has swapped the EMA weights into the model:
  the copy carries the EMA weights. ``EMAHook`` swaps by zipping the
  parameter lists of the model and of its EMA copy; as the model itself is
  never converted, those lists keep pairing the right tensors, and the order
  of the two hooks in ``after_*_epoch`` does not matter.
* Training is not disturbed: the trained model is neither modified nor put
  in eval mode (``ValLoop`` calls ``.eval()`` on ``runner.model``, i.e. on
  the copy), so training continues bit-identically.
* At the end of training it reads the last checkpoint back (with EMA, its
  ``state_dict`` holds the EMA weights), converts it and writes
  ``<name>_deploy.pth`` next to it (atomically), plus the matching deploy
  config ``<config name>_deploy.py`` in the work dir.
"""
import copy
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...converters.deploy_checkpoint import (deploy_checkpoint,
                                             deploy_checkpoint_path)
from ...converters.deploy_config import write_deploy_config
from ...deploy import count_repvgg_blocks, switch_to_deploy
from ...errors import ConfigError
from ...io.checkpoint import atomic_save
from ...io.weights import load_weights
from ..distributed import unwrap_model


@HOOKS.register_module()
class SwitchToDeployHook(Hook):
    """Run validation / test on the converted (deploy) form of the model.

    Args:
        convert_test: test the converted model (``Runner.test()``).
        convert_val: validate the converted model (``Runner.val()`` and
            validation during training); the trained model is untouched.
        save_deploy_checkpoint: after training, write the deploy form of the
            last checkpoint next to it as ``<name>_deploy.pth`` and the deploy
            config as ``<work_dir>/<config name>_deploy.py``.
    """

    # After EMAHook (NORMAL) in before_*_epoch, so the copy gets the EMA
    # weights; before CheckpointHook (VERY_LOW) in after_val_epoch, so a
    # "best" checkpoint is saved from the original model.
    priority = 'LOW'

    def __init__(self,
                 convert_test: bool = True,
                 convert_val: bool = True,
                 save_deploy_checkpoint: bool = True):
        self.convert_test = convert_test
        self.convert_val = convert_val
        self.save_deploy_checkpoint = save_deploy_checkpoint
        self._original = None

    def before_run(self, runner) -> None:
        if count_repvgg_blocks(unwrap_model(runner.model)) == 0:
            raise ValueError(
                f'SwitchToDeployHook is in custom_hooks, but the model '
                f'({type(unwrap_model(runner.model)).__name__}) holds no '
                f'RepVGG '
                f'block. Use type="RepVGGMM" as the backbone, or remove the '
                f'hook.')

    # ------------------------------------------------------------------
    # test / val on a converted copy
    def before_test_epoch(self, runner) -> None:
        if self.convert_test:
            self._use_converted_copy(runner, 'test')

    def after_test_epoch(self, runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        self._restore(runner)

    def before_val_epoch(self, runner) -> None:
        if self.convert_val:
            self._use_converted_copy(runner, 'val')

    def after_val_epoch(self, runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        self._restore(runner)

    def _use_converted_copy(self, runner, stage: str) -> None:
        model = unwrap_model(runner.model)
        unfused = count_repvgg_blocks(model, deployed=False)
        if unfused == 0:
            return  # built in deploy form already: nothing to convert
        converted = switch_to_deploy(model)  # a deep copy; model untouched
        self._original = runner.model
        runner.model = converted
        runner.logger.info(
            f'SwitchToDeployHook: {stage} runs on a converted copy of the '
            f'model ({unfused} RepVGG blocks fused).')

    def _restore(self, runner) -> None:
        if self._original is not None:
            runner.model = self._original
            self._original = None

    # ------------------------------------------------------------------
    # deploy checkpoint at the end of training
    def after_train(self, runner) -> None:
        if not self.save_deploy_checkpoint or not is_main_process():
            return
        last = runner.message_hub.get_info('last_ckpt')
        if last is None or not osp.isfile(last):
            runner.logger.warning(
                'SwitchToDeployHook: no local last checkpoint was saved, so '
                'no deploy checkpoint is written (is CheckpointHook enabled '
                'with a local out_dir?).')
            return
        model = copy.deepcopy(unwrap_model(runner.model))
        checkpoint = load_weights(model, last)
        switch_to_deploy(model, inplace=True)
        out = deploy_checkpoint_path(last)
        atomic_save(deploy_checkpoint(checkpoint, model, source=last), out)
        runner.logger.info(f'SwitchToDeployHook: wrote the deploy form of '
                           f'{last} to {out}')
        cfg = runner.cfg
        if cfg is None or 'model' not in cfg:
            return  # a Runner built without a config
        name = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg_out = osp.join(runner.work_dir, f'{name}_deploy.py')
        try:
            write_deploy_config(cfg, cfg_out)
        except ConfigError as exc:  # no RepVGGMM dict: keep the checkpoint
            runner.logger.warning(f'SwitchToDeployHook: {exc}')
            return
        runner.logger.info(
            f'SwitchToDeployHook: wrote the deploy config to {cfg_out}')
