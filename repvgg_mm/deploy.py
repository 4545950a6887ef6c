"""Convert any module that holds RepVGG blocks to its deploy form."""
import copy

import torch.nn as nn

from .models.repvgg import RepVGGMM
from .models.repvgg_block import RepVGGBlock


def count_repvgg_blocks(model: nn.Module, deployed: bool = None) -> int:
    """Number of RepVGG blocks in ``model`` (optionally: (un)fused ones)."""
    return sum(1 for m in model.modules() if isinstance(m, RepVGGBlock) and (
        deployed is None or m.deploy == deployed))


def switch_to_deploy(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fuse every RepVGG block of ``model`` and return the converted model.

    Works for a bare backbone, an mmpretrain classifier, an mmseg segmentor or
    any ``nn.Module`` holding :class:`RepVGGBlock`. With ``inplace=False``
    (the default) ``model`` is left untouched and a converted deep copy is
    returned. The outputs are the same function in eval mode only: BN
    running statistics are folded into the convs.

    Raises:
        ValueError: ``model`` holds no RepVGG block.
    """
    if count_repvgg_blocks(model) == 0:
        raise ValueError(
            f'{type(model).__name__} holds no RepVGG block, so there is '
            f'nothing to re-parameterize. Is the backbone type="RepVGGMM"?')
    if not inplace:
        model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, RepVGGMM):
            module.switch_to_deploy()
    for module in list(model.modules()):
        if isinstance(module, RepVGGBlock):
            module.switch_to_deploy()
    return model
