"""The "custom L2" of the RepVGG paper (Sec. 3.3, the official
``get_custom_L2``) as an mmengine constructor: plain weight decay on a
block's 3x3 and 1x1 branch kernels is replaced by the L2 of its equivalent
kernel, normalised by the (constant) BN scales. Enable it with
``optim_wrapper = dict(constructor='RepVGGCustomL2Constructor')``."""
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper)
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from torch import Tensor

from ...fusion import NormStats, norm_scale
from ...models.qarepvgg_block import QARepVGGBlock
from ...models.repvgg_block import RepVGGBlock
from ..distributed import unwrap_model
from .cpu_amp import CPUAmpOptimWrapper

#: parameters whose plain weight decay the custom L2 replaces
CUSTOM_L2_KEYS = ('branch_3x3.conv.weight', 'branch_1x1.conv.weight')


def block_custom_l2(block: RepVGGBlock) -> Tensor:
    """The custom L2 of one training-form block (differentiable in K3, K1)."""
    k3 = block.branch_3x3.conv.weight
    k1 = block.branch_1x1.conv.weight
    t3 = norm_scale(NormStats.from_module(block.branch_3x3.norm)).detach()
    t1 = norm_scale(NormStats.from_module(block.branch_1x1.norm)).detach()
    centre = k3[:, :, 1:2, 1:2]
    ring = (k3**2).sum() - (centre**2).sum()
    # the centre tap of the equivalent kernel, without the identity branch
    eq_centre = centre * t3 + k1 * t1
    return ring + (eq_centre**2 / (t3**2 + t1**2)).sum()


class CustomL2Penalty:
    """``0.5 * weight_decay * sum(block_custom_l2)`` over a model's blocks."""

    def __init__(self, model: nn.Module, weight_decay: float):
        num_qa = sum(isinstance(m, QARepVGGBlock) for m in model.modules())
        if num_qa:
            raise ValueError(
                f'RepVGGCustomL2Constructor: the model has {num_qa} '
                f'QARepVGGBlock(s), which the QARepVGG paper (arXiv '
                f'2212.01593) trains with plain weight decay (the custom L2 '
                f'enlarges the fused kernels\' variance). Remove '
                f'optim_wrapper.constructor (see configs/qarepvgg-a0_8xb32_'
                f'in1k.py).')
        self.blocks: List[RepVGGBlock] = [
            m for m in model.modules()
            if isinstance(m, RepVGGBlock) and not m.deploy]
        if not self.blocks:
            raise ValueError(
                'RepVGGCustomL2Constructor: the model has no training-form '
                'RepVGG block, so there is nothing for the custom L2 to '
                'regularise. Remove optim_wrapper.constructor (deploy-form '
                'models use plain weight decay).')
        self.weight_decay = weight_decay

    def __call__(self) -> Tensor:
        return 0.5 * self.weight_decay * sum(map(block_custom_l2, self.blocks))


class CustomL2Mixin:
    """Adds the custom-L2 penalty to the loss of every ``update_params``."""

    def __init__(self, *args, custom_l2: Optional[CustomL2Penalty] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.custom_l2 = custom_l2

    def update_params(self, loss: Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        if self.custom_l2 is not None:
            penalty = self.custom_l2()  # logged next to ``loss``
            MessageHub.get_current_instance().update_scalar(
                'train/custom_l2', penalty.item())
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


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RepVGGCustomL2Constructor(DefaultOptimWrapperConstructor):
    """Default constructor + the custom L2; ``paramwise_cfg`` applies, and
    the branch kernels (:data:`CUSTOM_L2_KEYS`) get ``decay_mult=0``."""

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        wrapper_type = optim_wrapper_cfg.get('type', 'OptimWrapper')
        base = wrapper_type[len('CustomL2'):] if wrapper_type.startswith(
            'CustomL2') else wrapper_type  # python 3.8: no removeprefix
        if base not in ('OptimWrapper', 'AmpOptimWrapper',
                        'CPUAmpOptimWrapper'):
            raise ValueError(
                f'RepVGGCustomL2Constructor supports optim_wrapper.type '
                f'OptimWrapper or AmpOptimWrapper, got "{wrapper_type}".')
        optim_wrapper_cfg['type'] = 'CustomL2' + base
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
        penalty = CustomL2Penalty(unwrap_model(model), self.base_wd)
        # the parent builds the wrapper from this cfg (a one-use constructor)
        self.optim_wrapper_cfg = dict(self.optim_wrapper_cfg,
                                      custom_l2=penalty)
        return super().__call__(model)
