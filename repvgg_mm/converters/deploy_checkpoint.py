"""Deploy checkpoints: form detection and the checkpoint dict.

A deploy checkpoint is the training checkpoint with

* ``state_dict`` replaced by the converted model's weights (every RepVGG
  block as ``*.branch_reparam.{weight,bias}``),
* ``meta`` kept, plus ``meta['repvgg_mm'] = dict(deploy=True, source=...)``,
* the training state dropped (:data:`TRAINING_STATE_KEYS`): optimizer and
  scheduler states and the message hub are of no use to a deployed model,
  and ``ema_state_dict`` holds training-form weights (mmengine stores the
  raw weights there and the EMA weights in ``state_dict``).
"""
import os.path as osp
from typing import Any, Dict

import torch.nn as nn
from mmengine.runner.checkpoint import weights_to_cpu

from ..version import __version__

TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub',
                       'ema_state_dict')


def deploy_checkpoint(checkpoint: Any, converted: nn.Module,
                      source: str) -> Dict[str, Any]:
    """The deploy checkpoint dict of ``converted`` (see the module doc)."""
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        checkpoint = dict(state_dict=checkpoint)  # a bare state dict
    out = {
        k: v
        for k, v in checkpoint.items()
        if k not in TRAINING_STATE_KEYS and k != 'state_dict'
    }
    meta = dict(checkpoint.get('meta') or {})
    meta['repvgg_mm'] = dict(deploy=True, source=osp.basename(source),
                             version=__version__)
    out['meta'] = meta
    out['state_dict'] = weights_to_cpu(converted.state_dict())
    return out


def deploy_checkpoint_path(path: str) -> str:
    """``work_dir/epoch_12.pth`` -> ``work_dir/epoch_12_deploy.pth``."""
    stem, ext = osp.splitext(path)
    return f'{stem}_deploy{ext or ".pth"}'
