"""Adaptive average pooling that exports to ONNX at any input size.

torch's TorchScript ONNX exporter (torch 2.14.1, opsets 9-20) writes
``adaptive_avg_pool2d`` as a fixed ``AveragePool`` and refuses it unless the
input size is a multiple of the output size and the size is static. PSPNet's
pyramid pooling (mmseg ``PPM``, pool scales 1, 2, 3, 6) therefore exported
only where the 1/8 feature map is a multiple of 6: not at Cityscapes' whole
image (1024x2048 -> 128x256), not at 64x64, never with dynamic axes.

Adaptive pooling is linear and separable: bin ``i`` of an axis of length
``n`` pooled to ``o`` bins averages positions ``floor(i n / o)`` to
``ceil((i + 1) n / o) - 1`` (``aten/src/ATen/native/AdaptiveAveragePooling``).
So ``y = P_h x P_w^T`` with row-normalised 0/1 matrices ``P`` built from
``n`` by ``arange`` and comparisons: ``MatMul`` and shape ops in ONNX, exact
up to float rounding, and still right when ``n`` is a dynamic axis.
:func:`exportable_adaptive_pooling` swaps this in for the export only.
"""
import contextlib
from typing import Iterator, List, Tuple

import torch
import torch.nn as nn


def pooling_matrix(n, bins: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """(bins, n) matrix whose row ``i`` averages the inputs of bin ``i``
    of ``adaptive_avg_pool`` along an axis of length ``n``."""
    index = torch.arange(bins, device=device)
    start = torch.div(index * n, bins, rounding_mode='floor')
    end = torch.div((index + 1) * n + bins - 1, bins, rounding_mode='floor')
    position = torch.arange(n, device=device)
    inside = (position[None, :] >= start[:, None]) & (
        position[None, :] < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


def _bins(output_size) -> Tuple:
    """``output_size`` of ``nn.AdaptiveAvgPool2d`` as (height, width)."""
    if isinstance(output_size, int):
        return output_size, output_size
    return tuple(output_size)


class MatrixAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` as two matrix products."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins_h, bins_w = _bins(self.output_size)
        height, width = x.shape[-2], x.shape[-1]
        bins_h = height if bins_h is None else bins_h
        bins_w = width if bins_w is None else bins_w
        rows = pooling_matrix(height, bins_h, x.dtype, x.device)
        cols = pooling_matrix(width, bins_w, x.dtype, x.device)
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def _is_global(output_size) -> bool:
    """Global pooling (output 1x1) exports as ``GlobalAveragePool``."""
    return _bins(output_size) == (1, 1)


@contextlib.contextmanager
def exportable_adaptive_pooling(module: nn.Module) -> Iterator[int]:
    """Within the block, every non-global ``nn.AdaptiveAvgPool2d`` of
    ``module`` is a :class:`MatrixAdaptiveAvgPool2d`; yields how many were
    swapped and puts the originals back on exit."""
    swapped: List[Tuple[nn.Module, str, nn.Module]] = []
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d) and not _is_global(
                    child.output_size):
                swapped.append((parent, name, child))
    try:
        for parent, name, child in swapped:
            setattr(parent, name, MatrixAdaptiveAvgPool2d(child.output_size))
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


__all__ = ['MatrixAdaptiveAvgPool2d', 'exportable_adaptive_pooling',
           'pooling_matrix']
