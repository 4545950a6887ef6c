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
    """Fuse every RepVGG block of ``model`` (a backbone, classifier,
    segmentor, ...) and return it; ``inplace=False`` converts a deep copy.
    The same function as ``model`` in eval mode (BN statistics folded)."""
    if count_repvgg_blocks(model) == 0:
        raise ValueError(
            f'{type(model).__name__} holds no RepVGG block, so there is '
            f'nothing to re-parameterize. Is the backbone type="RepVGGMM"?')
    if not inplace:
        model = copy.deepcopy(model)
    # a RepVGGMM comes before its blocks, fuses them and re-freezes stages
    for module in list(model.modules()):
        if isinstance(module, (RepVGGMM, RepVGGBlock)):
            module.switch_to_deploy()
    return model
