"""The "custom L2" of the RepVGG paper (Sec. 3.3) as an mmengine constructor.

Plain weight decay on the 3x3 and 1x1 branch kernels of a block is replaced
by the L2 of the block's *equivalent* kernel, normalised by the branch BN
scales (the official ``get_custom_L2``). For a block with kernels ``K3``,
``K1`` and BN scales ``t3 = gamma3 / sqrt(var3 + eps)``, ``t1`` likewise (both
treated as constants)::

    l2 = sum(K3 ** 2) - sum(K3c ** 2)
         + sum((K3c * t3 + K1 * t1) ** 2 / (t3 ** 2 + t1 ** 2))

where ``K3c`` is the centre tap of ``K3``; ``0.5 * weight_decay * sum(l2)``
over all training-form blocks is added to the loss before every update.

Switch it on in a config with one line::

    optim_wrapper = dict(constructor='RepVGGCustomL2Constructor')

It keeps every other weight-decay rule of the config (``paramwise_cfg``) and
gives the two branch kernels ``decay_mult=0``. ``OptimWrapper`` and
``AmpOptimWrapper`` (``--amp``) are both supported.
"""
from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper)
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from torch import Tensor

from ...fusion import NormStats, fuse_conv_norm
from ...models.qarepvgg_block import QARepVGGBlock
from ...models.repvgg_block import RepVGGBlock
from ..distributed import unwrap_model
from .cpu_amp import CPUAmpOptimWrapper

#: parameters whose plain weight decay the custom L2 replaces
CUSTOM_L2_KEYS = ('branch_3x3.conv.weight', 'branch_1x1.conv.weight')
#: log key of the penalty (in the training log next to ``loss``)
LOG_KEY = 'train/custom_l2'


def _detached(stats: NormStats) -> NormStats:
    return NormStats(*(t.detach() if torch.is_tensor(t) else t
                       for t in stats))


def _branch_scale(stats: NormStats, like: Tensor) -> Tensor:
    """``gamma / sqrt(var + eps)`` as ``(C, 1, 1, 1)`` (the fusion maths)."""
    ones = torch.ones(stats.running_var.shape[0], 1, 1, 1, dtype=like.dtype,
                      device=like.device)
    return fuse_conv_norm(ones, stats)[0]


def block_custom_l2(block: RepVGGBlock) -> Tensor:
    """The custom L2 of one training-form block (differentiable in K3, K1)."""
    k3 = block.branch_3x3.conv.weight
    k1 = block.branch_1x1.conv.weight
    n3 = _detached(NormStats.from_module(block.branch_3x3.norm))
    n1 = _detached(NormStats.from_module(block.branch_1x1.norm))
    t3, t1 = _branch_scale(n3, k3), _branch_scale(n1, k1)
    centre = k3[:, :, 1:2, 1:2]
    ring = (k3**2).sum() - (centre**2).sum()
    # the centre tap of the equivalent kernel, without the identity branch
    eq_centre = fuse_conv_norm(centre, n3)[0] + fuse_conv_norm(k1, n1)[0]
    return ring + (eq_centre**2 / (t3**2 + t1**2)).sum()


class CustomL2Penalty:
    """``0.5 * weight_decay * sum(block_custom_l2)`` over a model's blocks."""

    def __init__(self, model: nn.Module, weight_decay: float):
        qa_blocks = [m for m in model.modules()
                     if isinstance(m, QARepVGGBlock)]
        if qa_blocks:
            raise ValueError(
                f'RepVGGCustomL2Constructor: the model has '
                f'{len(qa_blocks)} QARepVGGBlock(s). The custom L2 is '
                f'defined for RepVGG\'s three BN branches only, and the '
                f'QARepVGG paper (arXiv 2212.01593) trains with plain weight '
                f'decay because the custom L2 enlarges the fused kernels\' '
                f'variance. Remove optim_wrapper.constructor (see '
                f'configs/qarepvgg-a0_8xb32_in1k.py).')
        self.blocks: List[RepVGGBlock] = [
            m for m in model.modules()
            if isinstance(m, RepVGGBlock) and not m.deploy
        ]
        if not self.blocks:
            raise ValueError(
                'RepVGGCustomL2Constructor: the model has no training-form '
                'RepVGG block, so there is nothing for the custom L2 to '
                'regularise. Remove optim_wrapper.constructor (deploy-form '
                'models use plain weight decay).')
        self.weight_decay = weight_decay

    def __call__(self) -> Tensor:
        l2 = sum(block_custom_l2(block) for block in self.blocks)
        return 0.5 * self.weight_decay * l2


class CustomL2Mixin:
    """Adds the custom-L2 penalty to the loss of every ``update_params``."""

    def __init__(self, *args, custom_l2: Optional[CustomL2Penalty] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.custom_l2 = custom_l2

    def update_params(self, loss: Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        if self.custom_l2 is not None:
            penalty = self.custom_l2()
            MessageHub.get_current_instance().update_scalar(
                LOG_KEY, penalty.item())
            loss = loss + penalty
        super().update_params(loss, step_kwargs, zero_kwargs)


@OPTIM_WRAPPERS.register_module()
class CustomL2OptimWrapper(CustomL2Mixin, OptimWrapper):
    """``OptimWrapper`` + RepVGG custom L2 (built by the constructor)."""


@OPTIM_WRAPPERS.register_module()
class CustomL2AmpOptimWrapper(CustomL2Mixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` + RepVGG custom L2 (built by the constructor)."""


@OPTIM_WRAPPERS.register_module()
class CustomL2CPUAmpOptimWrapper(CustomL2Mixin, CPUAmpOptimWrapper):
    """``CPUAmpOptimWrapper`` + RepVGG custom L2 (built by the constructor)."""


_L2_WRAPPERS = {
    'CPUAmpOptimWrapper': 'CustomL2CPUAmpOptimWrapper',
    'CustomL2CPUAmpOptimWrapper': 'CustomL2CPUAmpOptimWrapper',
    'OptimWrapper': 'CustomL2OptimWrapper',
    'AmpOptimWrapper': 'CustomL2AmpOptimWrapper',
    'CustomL2OptimWrapper': 'CustomL2OptimWrapper',
    'CustomL2AmpOptimWrapper': 'CustomL2AmpOptimWrapper',
}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RepVGGCustomL2Constructor(DefaultOptimWrapperConstructor):
    """Default constructor + the custom L2 of RepVGG (paper Sec. 3.3).

    The config's ``paramwise_cfg`` applies unchanged, except that the
    branch kernels (:data:`CUSTOM_L2_KEYS`) get ``decay_mult=0``: their
    regularisation is the custom L2, weighted by the optimizer's
    ``weight_decay``.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        wrapper_type = optim_wrapper_cfg.get('type', 'OptimWrapper')
        if wrapper_type not in _L2_WRAPPERS:
            raise ValueError(
                f'RepVGGCustomL2Constructor supports optim_wrapper.type '
                f'OptimWrapper or AmpOptimWrapper, got "{wrapper_type}".')
        optim_wrapper_cfg['type'] = _L2_WRAPPERS[wrapper_type]
        weight_decay = optim_wrapper_cfg['optimizer'].get('weight_decay')
        if not weight_decay:
            raise ValueError(
                'RepVGGCustomL2Constructor needs optim_wrapper.optimizer.'
                'weight_decay > 0: it is the coefficient of the custom L2.')
        paramwise_cfg = dict(paramwise_cfg or {})
        custom_keys = dict(paramwise_cfg.get('custom_keys', {}))
        for key in CUSTOM_L2_KEYS:
            custom_keys[key] = dict(custom_keys.get(key, {}), decay_mult=0.0)
        paramwise_cfg['custom_keys'] = custom_keys
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        module = unwrap_model(model)
        penalty = CustomL2Penalty(module, self.base_wd)
        # the parent builds the wrapper from self.optim_wrapper_cfg; this
        # constructor is used once, so handing the penalty over here is safe.
        self.optim_wrapper_cfg = dict(self.optim_wrapper_cfg,
                                      custom_l2=penalty)
        return super().__call__(model)
