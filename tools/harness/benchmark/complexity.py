"""Parameters and multiply-accumulates of a model, via mmengine.

``mmengine.analysis`` (fvcore's counters) counts one fused multiply-add as
one "flop", so its ``flops`` are MACs -- the unit of the paper's "FLOPs"
column (paper Table 4, "FLOPs"). ``tests/test_benchmark.py`` checks this on
a conv.
"""
from typing import NamedTuple

import torch
import torch.nn as nn


class Complexity(NamedTuple):
    params: int
    macs: int  #: per image


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN statistics not counted)."""
    return sum(p.numel() for p in model.parameters())


def complexity(model: nn.Module, shape, channels: int = 3) -> Complexity:
    """Parameters and MACs per image for an input of ``(channels, *shape)``.
    """
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger

    device = next(model.parameters()).device
    inputs = (torch.randn(1, channels, *shape, device=device), )
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')  # unsupported-op warnings for every add/relu
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model, inputs=inputs, show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return Complexity(int(info['params']), int(info['flops']))
