"""What the hardware can give a model: the layer shapes and MACs of a
network, and the *ceiling* rate per precision on this machine.

The ceiling of a precision is the runtime's own best rate (OpenVINO: fp32,
bf16, NNCF INT8) on a small stack of 3x3 convolutions at the model's
dominant layer shape (the 3x3 conv shape that holds most of its MACs), at
the same batch and threads as the model. It is timed in the same rounds as
the servings (:mod:`.rounds`), so ``% of ceiling`` compares like with like.
A dense matrix product (``torch.mm``) is not such a ceiling: convolutions
reach more than it on some CPUs.

``% of ceiling`` is never above 100 by construction: when a serving runs
faster than the stack, the serving's own rate is taken as the ceiling and
the report says so (:func:`ceilings`).
"""
import os.path as osp
from collections import defaultdict
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

#: convolutions in the stack: enough to be compute-bound, small to build
STACK_DEPTH = 4
PRECISIONS = ('fp32', 'bf16', 'int8')


class Layer(NamedTuple):
    """One conv / linear layer as run on an example input."""

    kind: str  #: ``'conv3x3'``, ``'conv'`` or ``'linear'``
    in_channels: int
    out_channels: int
    height: int  #: output size
    width: int
    stride: int
    groups: int
    macs: int  #: per image


def layers_of(model: nn.Module, example: torch.Tensor) -> List[Layer]:
    """Every Conv2d / Linear of ``model`` run on ``example`` (one image is
    enough), in forward order, with its MACs per image."""
    found = []

    def hook(module, args, output):
        n = output.shape[0]
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            h, w = output.shape[2:]
            macs = (module.in_channels // module.groups) * k * \
                module.out_channels * h * w
            kind = 'conv3x3' if module.kernel_size == (3, 3) else 'conv'
            found.append(Layer(kind, module.in_channels, module.out_channels,
                               h, w, module.stride[0], module.groups, macs))
        else:
            macs = module.in_features * module.out_features * (
                output.numel() // output.shape[-1] // n)
            found.append(Layer('linear', module.in_features,
                               module.out_features, 1, 1, 1, 1, macs))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return found


def dominant_shape(layers: List[Layer]) -> Tuple[int, int, int]:
    """``(channels, height, width)`` of the plain 3x3 conv shape (groups 1,
    output channels as its input's) holding most MACs; any conv if the
    model has no such layer."""
    totals: Dict[Tuple[int, int, int], int] = defaultdict(int)
    for layer in layers:
        if layer.kind == 'conv3x3' and layer.groups == 1:
            totals[(layer.out_channels, layer.height, layer.width)] += \
                layer.macs
    if not totals:
        for layer in layers:
            if layer.kind != 'linear':
                totals[(layer.out_channels, layer.height, layer.width)] += \
                    layer.macs
    if not totals:
        raise ValueError('the model has no convolution to take a ceiling '
                         'shape from')
    return max(totals, key=totals.get)


class ConvStack(nn.Sequential):
    """``depth`` 3x3 convs (``channels`` -> ``channels``, padding 1), each
    followed by ReLU: the RepVGG deploy block, repeated."""

    def __init__(self, channels: int, depth: int = STACK_DEPTH):
        layers = []
        for _ in range(depth):
            layers += [nn.Conv2d(channels, channels, 3, padding=1),
                       nn.ReLU(inplace=True)]
        super().__init__(*layers)
        gen = torch.Generator().manual_seed(0)
        for module in self:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=(2 / (9 * channels))**0.5,
                                generator=gen)
                nn.init.zeros_(module.bias)


class Ceiling(NamedTuple):
    precision: str
    forward: Callable[[], object]  #: one batch through the stack
    macs_per_call: int
    shape: Tuple[int, int, int, int]  #: the stack's input (N, C, H, W)


def ceiling_entries(shape: Tuple[int, int, int], batch: int,
                    precisions: List[str], work_dir: str,
                    threads: Optional[int] = None) -> List[Ceiling]:
    """The conv stack at ``shape`` (C, H, W) for each of ``precisions``,
    ready to be timed: OpenVINO fp32, bf16 (inference precision hint), and
    NNCF INT8 calibrated on random inputs (the speed does not depend on
    them)."""
    from .onnx_export import export_onnx
    from .quantize import quantize_graph
    from .session import open_session
    channels, height, width = shape
    stack = ConvStack(channels).eval()
    gen = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch, channels, height, width, generator=gen)
    path = osp.join(work_dir, 'ceiling_stack.onnx')
    export_onnx(stack, inputs, path, ['output'])
    macs = sum(channels * channels * 9 * height * width
               for m in stack if isinstance(m, nn.Conv2d)) * batch
    array = inputs.numpy()
    out = []
    for precision in precisions:
        model, hint = path, precision
        if precision == 'int8':
            model = quantize_graph(
                'openvino', path, [array], osp.join(
                    work_dir, 'ceiling_stack_int8.xml'), progress=False)
            hint = 'fp32'
        session = open_session(model, 'openvino', hint, threads)
        out.append(Ceiling(precision, lambda s=session: s(array), macs,
                           tuple(inputs.shape)))
    return out


def ceilings(stack_rates: Dict[str, List[float]],
             serving_rates: Dict[str, Tuple[str, List[float]]]
             ) -> Dict[str, dict]:
    """Per precision: the stack's MAC/s per round, raised to the fastest
    serving of that precision where the serving beat the stack (so no
    serving is above 100 %).

    Args:
        stack_rates: precision -> the stack's MAC/s, one per round.
        serving_rates: serving name -> (precision, its MAC/s per round).
    """
    from .stats import summary
    out = {}
    for precision, rates in stack_rates.items():
        stack = summary(rates)
        best_name, best = None, None
        for name, (prec, values) in serving_rates.items():
            med = float(np.median(values))
            if prec == precision and (best is None or med > best):
                best_name, best = name, med
        entry = dict(stack_macs_per_s=stack, macs_per_s=stack['median'],
                     source='conv stack')
        if best is not None and best > stack['median']:
            entry.update(macs_per_s=best, source=best_name,
                         note=f'{best_name} ran faster than the conv stack '
                         f'({best / 1e9:.1f} vs {stack["median"] / 1e9:.1f} '
                         f'GMAC/s): its rate is the ceiling')
        out[precision] = entry
    return out
