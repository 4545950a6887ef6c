"""Checking that a converted model is the same function as its training form.

Used by the tests and ``tools/arch_report.py``; ``tools/convert_deploy.py
--verify`` compares with :func:`relative_errors`.
"""
from typing import Dict, Sequence, Union

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..deploy import switch_to_deploy

Outputs = Union[torch.Tensor, Sequence[torch.Tensor], Dict[str, torch.Tensor]]


@torch.no_grad()
def randomize_norm_stats_(model: nn.Module, inputs: torch.Tensor = None,
                          seed: int = 0) -> nn.Module:
    """Give every BN random, well-conditioned statistics and affine params.

    With ``inputs``, the running statistics are first calibrated on them (a
    cumulative average over one train-mode pass), so the signal stays
    well-conditioned through deep stacks (D2se; see docs/design.md); then
    means,
    variances, gammas and betas are perturbed randomly. The model is left in
    eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if inputs is not None:
        saved = [(m.momentum, m.training) for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        model(inputs)
        for m, (momentum, _) in zip(norms, saved):
            m.momentum = momentum
    for m in norms:
        c = m.num_features

        def rand(low, high):
            return torch.empty(c).uniform_(low, high, generator=gen).to(
                m.running_var)

        std = m.running_var.sqrt()
        m.running_mean.add_(rand(-0.2, 0.2) * std)
        m.running_var.mul_(rand(0.5, 2.0))
        if m.weight is not None:
            m.weight.copy_(rand(0.3, 0.8))
            m.bias.copy_(rand(-0.2, 0.2))
    return model.eval()


def flatten_outputs(outputs: Outputs):
    if torch.is_tensor(outputs):
        return [outputs]
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    return [t for o in outputs for t in flatten_outputs(o)]


def relative_errors(reference: Outputs, converted: Outputs):
    """Per output: (max |a - b|, max |a - b| / max |a|)."""
    refs, outs = flatten_outputs(reference), flatten_outputs(converted)
    if len(refs) != len(outs):
        raise ValueError(f'{len(refs)} reference outputs vs {len(outs)}')
    errors = []
    for a, b in zip(refs, outs):
        if a.shape != b.shape:
            raise ValueError(f'shape {tuple(a.shape)} vs {tuple(b.shape)}')
        abs_err = (a.double() - b.double()).abs().max().item()
        scale = a.double().abs().max().item()
        errors.append((abs_err, abs_err / scale if scale > 0 else abs_err))
    return errors


@torch.no_grad()
def conversion_errors(model: nn.Module, inputs: torch.Tensor,
                      calibrate: bool = True, seed: int = 0):
    """Randomise BN stats, convert a copy, compare outputs in eval mode.

    Returns ``relative_errors(training_form(inputs), deploy_form(inputs))``.
    ``calibrate=False`` skips the train-mode calibration pass (needed for
    SyncBN models without a process group).
    """
    randomize_norm_stats_(model, inputs if calibrate else None, seed)
    reference = model(inputs)
    deployed = switch_to_deploy(model).eval()
    return relative_errors(reference, deployed(inputs))
