"""Deploy checkpoints: the training checkpoint with the converted model's
weights, ``meta['repvgg_mm']`` added and the training state dropped."""
import os.path as osp
from typing import Any, Dict

import torch.nn as nn
from mmengine.runner.checkpoint import weights_to_cpu

from ..version import __version__

#: of no use to a deployed model; ``ema_state_dict`` holds training-form
#: weights (mmengine keeps the EMA weights in ``state_dict``)
TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub',
                       'ema_state_dict')


def deploy_checkpoint(checkpoint: Any, converted: nn.Module,
                      source: str) -> Dict[str, Any]:
    """The deploy checkpoint dict of ``converted`` (see the module doc)."""
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
