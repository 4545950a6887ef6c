"""Fold every eval-mode BatchNorm into the convolution that feeds it.

The deployed form of a baseline (ResNet, ...) for a fair comparison: the
paper's speed figures are of inference-time models, where a BN after a conv
is a per-channel affine map that costs a full memory pass for nothing.

Pairs are found by running the model once and recording who reads the
tensor each conv produced: leaf modules (forward pre-hooks) and torch
functions called outside leaf modules (a ``TorchFunctionMode``, e.g. a
residual ``+`` in a block's ``forward``). A conv whose output is read by
exactly one module, a BN, is folded. This works for any module structure
(``ConvModule``, ResNet blocks with ``conv1``/``bn1`` attributes,
``nn.Sequential``, timm). The maths is
:func:`repvgg_mm.fusion.fuse_conv_norm`, the one every conversion of this
project uses.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ..fusion import NormStats, fuse_conv_norm

#: tensor functions that only read metadata, not values
_METADATA = {'size', 'dim', 'numel', 'stride', '__get__', 'is_contiguous',
             'element_size', 'ndimension'}


class _ReadRecorder(TorchFunctionMode):
    """Records reads of conv outputs by torch functions outside leaves."""

    def __init__(self, produced: Dict[int, tuple], readers: Dict[str, list]):
        super().__init__()
        self.produced, self.readers = produced, readers
        self.leaf_depth = 0

    def note(self, reader: str, tensors) -> None:
        for tensor in tensors:
            hit = self.produced.get(id(tensor)) if torch.is_tensor(
                tensor) else None
            if hit is not None and hit[1] is tensor:
                self.readers.setdefault(hit[0], []).append(reader)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.leaf_depth == 0 and getattr(func, '__name__',
                                            '') not in _METADATA:
            self.note(f'<{getattr(func, "__name__", func)}>',
                      tree_leaves((args, kwargs)))
        return func(*args, **kwargs)


def find_conv_norm_pairs(model: nn.Module, example: torch.Tensor
                         ) -> List[Tuple[str, str]]:
    """``(conv name, norm name)`` pairs where the conv's output is read by
    the BN and by nothing else."""
    names = {module: name for name, module in model.named_modules()}
    produced = {}  # id(tensor) -> (conv name, tensor)   (kept alive)
    readers = {}  # conv name -> who read its output
    recorder = _ReadRecorder(produced, readers)

    def enter_leaf(module, inputs):
        recorder.note(names[module], inputs)
        recorder.leaf_depth += 1

    def leave_leaf(module, inputs, output):
        recorder.leaf_depth -= 1
        if type(module) is nn.Conv2d:  # subclasses may pad/scale: skip
            produced[id(output)] = (names[module], output)

    handles = []
    for module in names:
        if not list(module.children()):
            handles.append(module.register_forward_pre_hook(enter_leaf))
            handles.append(module.register_forward_hook(leave_leaf))
    try:
        with torch.no_grad(), recorder:
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    modules = dict(model.named_modules())
    pairs = []
    for conv_name, reader_names in readers.items():
        norm = modules.get(reader_names[0])
        if len(reader_names) == 1 and isinstance(norm, _BatchNorm) and (
                norm.running_mean is not None):
            pairs.append((conv_name, reader_names[0]))
    return pairs


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@torch.no_grad()
def fuse_conv_norm_pairs(model: nn.Module, example: torch.Tensor) -> int:
    """Fuse in place (eval-mode statistics); returns the number of BNs folded.

    Callers still compare the outputs before and after
    (:func:`repvgg_mm.benchmark.forms.deployed_form` does).
    """
    model.eval()
    pairs = find_conv_norm_pairs(model, example)
    for conv_name, norm_name in pairs:
        conv = model.get_submodule(conv_name)
        norm = model.get_submodule(norm_name)
        stats = NormStats.from_module(norm)
        if conv.bias is not None:  # BN(conv(x) + b): shift the mean by b
            stats = stats._replace(running_mean=stats.running_mean - conv.bias)
        kernel, bias = fuse_conv_norm(conv.weight, stats)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels,
                          conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True,
                          padding_mode=conv.padding_mode).to(kernel)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        _set_module(model, conv_name, fused)
        _set_module(model, norm_name, nn.Identity())
    return len(pairs)
