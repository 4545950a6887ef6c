"""Squeeze-and-excitation gate used by RepVGG-D2se."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule


class SEGate(BaseModule):
    """``x * sigmoid(expand(relu(reduce(mean_hw(x)))))`` with reduction
    ``ratio``. Pools over the whole of H and W (the official code's square
    pooling kernel misses part of non-square inputs; see docs/design.md)."""

    #: mmengine's BaseModule property, which TorchScript cannot compile
    __jit_unused_properties__ = ['is_init']

    def __init__(self, channels: int, ratio: int = 16, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden = max(1, channels // ratio)
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(gate))))
        return x * gate
