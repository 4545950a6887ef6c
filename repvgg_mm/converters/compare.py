"""Running the training and deploy forms side by side (``--verify``)."""
import inspect
from typing import List, Tuple

import torch
import torch.nn as nn

from ..utils.verify import relative_errors


def forward_tensor(model: nn.Module, inputs: torch.Tensor):
    """Raw outputs: ``mode='tensor'`` for mmengine models."""
    if 'mode' in inspect.signature(model.forward).parameters:
        return model(inputs, mode='tensor')
    return model(inputs)


@torch.no_grad()
def run_forms(reference: nn.Module, converted: nn.Module,
              inputs: torch.Tensor):
    """The raw outputs ``(reference, converted)`` in eval mode."""
    return (forward_tensor(reference.eval(), inputs),
            forward_tensor(converted.eval(), inputs))


def compare_forms(reference: nn.Module, converted: nn.Module,
                  inputs: torch.Tensor) -> List[Tuple[float, float]]:
    """:func:`relative_errors` of both models' outputs in eval mode."""
    return relative_errors(*run_forms(reference, converted, inputs))
