"""The *ceiling* rate of a precision: OpenVINO's (fp32, bf16, NNCF INT8) on a
stack of 3x3 convs at the model's dominant layer shape, same batch and
threads, timed with the servings (``torch.mm`` is no such ceiling: convs
beat it on some CPUs). A serving faster than the stack becomes the
ceiling, so ``% of ceiling`` stays <= 100."""
import os.path as osp
from collections import defaultdict
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from .onnx_export import export_onnx
from .quantize import quantize_graph
from .rounds import summary
from .session import open_session

#: convolutions in the stack: enough to be compute-bound, small to build
STACK_DEPTH = 4


class Layer(NamedTuple):
    kind: str  #: ``'conv3x3'``, ``'conv'`` or ``'linear'``
    out_channels: int
    height: int  #: output size
    width: int
    groups: int
    macs: int  #: per image


def layers_of(model: nn.Module, example: torch.Tensor) -> List[Layer]:
    """Every Conv2d / Linear run by ``model(example)``, in order."""
    found = []

    def hook(module, args, output):
        # MACs per image: one output value costs one weight row (both types)
        macs = module.weight[0].numel() * output[0].numel()
        if isinstance(module, nn.Linear):
            found.append(Layer('linear', module.out_features, 1, 1, 1, macs))
        else:
            found.append(Layer(
                'conv3x3' if module.kernel_size == (3, 3) else 'conv',
                module.out_channels, *output.shape[2:], module.groups, macs))

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
    """``(channels, height, width)`` of the plain 3x3 conv shape (groups 1)
    holding most MACs, else of any conv."""
    for plain in (True, False):
        totals: Dict[Tuple[int, int, int], int] = defaultdict(int)
        for la in layers:
            if la.kind == 'conv3x3' and la.groups == 1 or (
                    not plain and la.kind != 'linear'):
                totals[(la.out_channels, la.height, la.width)] += la.macs
        if totals:
            return max(totals, key=totals.get)
    raise ValueError('the model has no convolution to take a ceiling shape '
                     'from')


class Ceiling(NamedTuple):
    precision: str
    forward: Callable[[], object]  #: one batch through the stack
    macs_per_call: int


def ceiling_entries(shape: Tuple[int, int, int], batch: int,
                    precisions: List[str], work_dir: str,
                    threads: Optional[int] = None) -> List[Ceiling]:
    """The conv stack at ``shape`` (C, H, W) per precision, ready to be
    timed (INT8 calibrated on random inputs: speed does not depend on them)."""
    channels, height, width = shape
    gen = torch.Generator().manual_seed(0)
    stack = nn.Sequential(*[layer for _ in range(STACK_DEPTH) for layer in (
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())]).eval()
    for conv in stack[::2]:
        nn.init.normal_(conv.weight, std=(2 / (9 * channels))**0.5,
                        generator=gen)
        nn.init.zeros_(conv.bias)
    array = torch.rand(batch, channels, height, width, generator=gen).numpy()
    path = osp.join(work_dir, 'ceiling_stack.onnx')
    export_onnx(stack, torch.from_numpy(array), path, ['output'])
    macs = STACK_DEPTH * channels * channels * 9 * height * width * batch
    out = []
    for precision in precisions:
        model, hint = path, precision
        if precision == 'int8':
            model = quantize_graph(
                'openvino', path, [array], osp.join(
                    work_dir, 'ceiling_stack_int8.xml'), progress=False)
            hint = 'fp32'
        session = open_session(model, 'openvino', hint, threads)
        out.append(Ceiling(precision, lambda s=session: s(array), macs))
    return out


def ceilings(stack_rates: Dict[str, List[float]],
             serving_rates: Dict[str, Tuple[str, List[float]]]
             ) -> Dict[str, dict]:
    """Per precision: the stack's MAC/s (``stack_rates``: per round),
    raised to the fastest serving of that precision that beat it
    (``serving_rates``: name -> (precision, MAC/s per round))."""
    out = {}
    for precision, rates in stack_rates.items():
        stack = summary(rates)
        best, best_name = max(((float(np.median(values)), name) for name, (
            prec, values) in serving_rates.items() if prec == precision),
            default=(None, None))
        entry = dict(stack_macs_per_s=stack, macs_per_s=stack['median'],
                     source='conv stack')
        if best is not None and best > stack['median']:
            entry.update(macs_per_s=best, source=best_name,
                         note=f'{best_name} ran faster than the conv stack '
                         f'({best / 1e9:.1f} vs {stack["median"] / 1e9:.1f} '
                         f'GMAC/s): its rate is the ceiling')
        out[precision] = entry
    return out
