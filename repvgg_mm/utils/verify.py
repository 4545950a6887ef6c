"""Checking that a converted model is the same function as its training
form (``--verify``), and that a checkpoint's weights are finite."""
import inspect
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..errors import CheckpointError, VerificationError

#: --verify passes when max |a - b| <= REL_TOL * max |a| (over all outputs)
REL_TOL = 1e-4

Outputs = Union[torch.Tensor, Sequence[torch.Tensor], Dict[str, torch.Tensor]]


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
        if a.numel() == 0:
            errors.append((0.0, 0.0))
            continue
        # tensor max propagates NaN (Python's max() would drop it)
        abs_err = (a.double() - b.double()).abs().max().item()
        scale = a.double().abs().max().item()
        errors.append((abs_err, abs_err / scale if scale > 0 else abs_err))
    return errors


def worst_errors(errors: Sequence[Tuple[float, float]]) -> Tuple[float, float]:
    """The largest ``(abs, rel)`` over all outputs, NaN propagated."""
    worst = torch.tensor(errors, dtype=torch.float64).amax(dim=0).tolist()
    return worst[0], worst[1]


def _nonfinite(t: torch.Tensor) -> Optional[str]:
    if not t.is_floating_point() or bool(torch.isfinite(t).all()):
        return None
    return 'NaN' if bool(torch.isnan(t).any()) else 'Inf'


def check_finite_weights(state_dict: dict, source: str) -> None:
    """Raise :class:`VerificationError` if a weight of ``source`` (a
    checkpoint path) holds NaN or Inf, naming the first layer;
    :class:`CheckpointError` for a value that is no tensor."""
    found = []
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            raise CheckpointError(
                f'the state dict entry "{key}" is a {type(value).__name__}, '
                f'not a tensor; the file is not a model checkpoint (or was '
                f'edited). Give a checkpoint of this model.')
        bad = _nonfinite(value)
        if bad:
            found.append((key, bad))
    if found:
        key, bad = found[0]
        more = f' (and {len(found) - 1} more tensors)' if len(found) > 1 \
            else ''
        raise VerificationError(
            f'the checkpoint "{source}" has {bad} in layer '
            f'{key.rsplit(".", 1)[0]} ({key}){more}: the weights are broken '
            f'(a diverged training run?), so no converted, exported or '
            f'quantized model can be right. Nothing was written. Use an '
            f'earlier checkpoint of the run.')


def verify_outputs(reference: Outputs, converted: Outputs,
                   tolerance: float = REL_TOL,
                   names: Optional[Sequence[str]] = None,
                   forms: Tuple[str, str] = ('the training form',
                                             'the converted model')
                   ) -> Tuple[float, float]:
    """Check ``converted`` against ``reference`` over every output; returns
    the worst ``(abs, rel)`` error. Raises :class:`VerificationError`."""
    refs, outs = flatten_outputs(reference), flatten_outputs(converted)
    names = list(names or [])[:len(refs)]
    names += [f'output {i}' for i in range(len(names), len(refs))]
    for form, tensors in zip(forms, (refs, outs)):
        for name, t in zip(names, tensors):
            bad = _nonfinite(t.detach())
            if bad:
                raise VerificationError(
                    f'{name} of {form} holds {bad} (the weights are finite, '
                    f'so the computation itself overflows or divides by '
                    f'zero). Nothing was written. Check the input size and '
                    f'the model\'s normalisation layers.')
    errors = relative_errors(refs, outs)
    worst_abs, worst_rel = worst_errors(errors)
    if not worst_rel <= tolerance:
        index = max(range(len(errors)), key=lambda i: errors[i][1])
        raise VerificationError(
            f'{forms[1]} differs from {forms[0]} by {worst_rel:.3e} of the '
            f'largest output (worst: {names[index]}), beyond the tolerance '
            f'{tolerance:g}. Nothing was written. Please report this with '
            f'the config.')
    return worst_abs, worst_rel
