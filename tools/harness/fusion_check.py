"""Checking a model's fusion on non-trivial BatchNorm statistics (the tests
and the paper figures): trained-looking random statistics, and the error
between a model and its deploy form."""
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.deploy import switch_to_deploy
from repvgg_mm.utils.verify import relative_errors


@torch.no_grad()
def randomize_norm_stats_(model: nn.Module, inputs: torch.Tensor = None,
                          seed: int = 0) -> nn.Module:
    """Give every BN random, well-conditioned statistics and affine params
    (first calibrated on ``inputs`` in one train-mode pass, so deep stacks
    such as D2se stay well-conditioned); leaves the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if inputs is not None:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()(inputs)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    for m in norms:

        def rand(low, high):
            return torch.empty(m.num_features).uniform_(
                low, high, generator=gen).to(m.running_var)

        std = m.running_var.sqrt()
        m.running_mean.add_(rand(-0.2, 0.2) * std)
        m.running_var.mul_(rand(0.5, 2.0))
        if m.weight is not None:
            m.weight.copy_(rand(0.3, 0.8))
            m.bias.copy_(rand(-0.2, 0.2))
    return model.eval()


@torch.no_grad()
def conversion_errors(model: nn.Module, inputs: torch.Tensor,
                      calibrate: bool = True, seed: int = 0):
    """:func:`relative_errors` of the model (random BN stats) and its
    deploy form; ``calibrate=False`` for SyncBN without a process group."""
    randomize_norm_stats_(model, inputs if calibrate else None, seed)
    reference = model(inputs)
    deployed = switch_to_deploy(model).eval()
    return relative_errors(reference, deployed(inputs))
