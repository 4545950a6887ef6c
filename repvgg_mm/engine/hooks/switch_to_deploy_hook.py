"""``SwitchToDeployHook``: validate, test and ship the converted model
(docs/design.md)."""
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...converters.deploy_form import (deploy_checkpoint,
                                       deploy_checkpoint_path,
                                       write_deploy_config)
from ...deploy import count_repvgg_blocks, switch_to_deploy
from ...errors import ConfigError
from ...io.checkpoint import atomic_save
from ...io.weights import load_weights
from ..distributed import unwrap_model


@HOOKS.register_module()
class SwitchToDeployHook(Hook):
    """Test (``convert_test``) and validate (``convert_val``) on a converted
    deep copy, made after the checkpoint is loaded, so training is untouched;
    ``runner.model`` points at it until the epoch ends (mmengine 0.10.7's
    loops read it every iteration). ``save_deploy_checkpoint``: after
    training write ``<last checkpoint>_deploy.pth`` and
    ``<work_dir>/<config>_deploy.py``."""

    # After EMAHook (NORMAL) in before_*_epoch, so the copy gets the EMA
    # weights; before CheckpointHook (VERY_LOW) in after_val_epoch, so a
    # "best" checkpoint is saved from the original model.
    priority = 'LOW'

    def __init__(self, convert_test: bool = True, convert_val: bool = True,
                 save_deploy_checkpoint: bool = True):
        self.convert_test = convert_test
        self.convert_val = convert_val
        self.save_deploy_checkpoint = save_deploy_checkpoint
        self._original = None

    def before_run(self, runner) -> None:
        model = unwrap_model(runner.model)
        if count_repvgg_blocks(model) == 0:
            raise ValueError(
                f'SwitchToDeployHook is in custom_hooks, but the model '
                f'({type(model).__name__}) holds no RepVGG block. Use '
                f'type="RepVGGMM" as the backbone, or remove the hook.')

    def before_test_epoch(self, runner) -> None:
        if self.convert_test:
            self._use_converted_copy(runner, 'test')

    def before_val_epoch(self, runner) -> None:
        if self.convert_val:
            self._use_converted_copy(runner, 'val')

    def after_test_epoch(self, runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        if self._original is not None:  # put the trained model back
            runner.model = self._original
            self._original = None

    after_val_epoch = after_test_epoch

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
        # a converted copy; the training-form weights are fused on loading
        model = switch_to_deploy(unwrap_model(runner.model))
        checkpoint = load_weights(model, last)
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
            runner.logger.info(
                f'SwitchToDeployHook: wrote the deploy config to {cfg_out}')
        except ConfigError as exc:  # no RepVGGMM dict: keep the checkpoint
            runner.logger.warning(f'SwitchToDeployHook: {exc}')
