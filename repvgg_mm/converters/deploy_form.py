"""The deploy form's files: the deploy config (``deploy=True`` on every
RepVGG dict of ``cfg.model``) and the deploy checkpoint (the training
checkpoint with the converted model's weights, ``meta['repvgg_mm']`` added
and the training state dropped)."""
import copy
import os.path as osp
from typing import Any, Dict

import torch.nn as nn
from mmengine.runner.checkpoint import weights_to_cpu

from ..errors import ConfigError
from ..io.atomic import atomic_output
from ..utils.config import find_module_dicts
from ..version import __version__

#: config types whose ``deploy`` flag selects the fused form
REPVGG_TYPES = ('RepVGGMM', 'RepVGGBlock', 'QARepVGGBlock')
BACKBONE_TYPES = ('RepVGGMM', )


def deploy_config(cfg):
    """A copy of ``cfg`` whose RepVGG modules are built in deploy form."""
    cfg = copy.deepcopy(cfg)
    found = find_module_dicts(cfg.model, REPVGG_TYPES)
    if not found:
        raise ConfigError(
            'the config\'s model has no type="RepVGGMM" (or "RepVGGBlock") '
            'dict, so no deploy config can be derived from it.')
    for _, node in found:
        node['deploy'] = True
    return cfg


def write_deploy_config(cfg, path: str) -> None:
    """Write ``deploy_config(cfg)`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        deploy_config(cfg).dump(tmp)


#: of no use to a deployed model; ``ema_state_dict`` holds training-form
#: weights (mmengine keeps the EMA weights in ``state_dict``)
TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub',
                       'ema_state_dict')


def deploy_checkpoint(checkpoint: Any, converted: nn.Module,
                      source: str) -> Dict[str, Any]:
    """The deploy checkpoint dict of ``converted``."""
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        checkpoint = dict(state_dict=checkpoint)  # a bare state dict
    out = {k: v for k, v in checkpoint.items()
           if k not in TRAINING_STATE_KEYS + ('state_dict', )}
    out['meta'] = dict(checkpoint.get('meta') or {},
                       repvgg_mm=dict(deploy=True, version=__version__,
                                      source=osp.basename(source)))
    out['state_dict'] = weights_to_cpu(converted.state_dict())
    return out


def deploy_checkpoint_path(path: str) -> str:
    """``work_dir/epoch_12.pth`` -> ``work_dir/epoch_12_deploy.pth``."""
    stem, ext = osp.splitext(path)
    return f'{stem}_deploy{ext or ".pth"}'
