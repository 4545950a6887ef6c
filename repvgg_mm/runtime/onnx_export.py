"""Writing an ONNX file of a module (TorchScript-based exporter).

``torch.onnx.export(..., dynamo=False)``: the TorchScript exporter traces
the module once and keeps ``dynamic_axes``; on the models of this project it
exports in about a second, where torch 2.14's default (``dynamo=True``,
needs ``onnxscript``, which this project therefore does not install) takes
several; both produce the same operators.
Non-global adaptive average pooling (PSPNet's pyramid) is exported as
matrix products (:mod:`.adaptive_pool`), so any input size and dynamic axes
work.
"""
import re
import warnings
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError
from .adaptive_pool import exportable_adaptive_pooling

#: images axes that ``dynamic=True`` leaves free
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}


def _exporter_error(exc: Exception, opset: int) -> ConfigError:
    text = str(exc).strip()
    ops = re.findall(r"export of operator (\w+)|operator '?((?:aten|prim)::"
                     r"\w+)|(Python operator \w+)", text)
    ops = sorted({name for match in ops for name in match if name})
    named = f' (operator: {", ".join(ops)})' if ops else ''
    last = (text.splitlines() or [''])[0][:400]
    return ConfigError(
        f'the ONNX exporter failed{named} at opset {opset}: '
        f'{type(exc).__name__}: {last}. Nothing was written. Try another '
        f'--opset, or replace the module that uses this operator.')


def export_onnx(module: nn.Module, example: torch.Tensor, path: str,
                output_names: Sequence[str], opset: int = 17,
                dynamic: bool = False,
                metadata: Optional[Dict[str, str]] = None) -> None:
    """Export ``module(example)`` to ``path`` (input named ``images``) and
    store ``metadata`` in the model's ``metadata_props``.

    Raises:
        ConfigError: the exporter failed (the message names the operator).
    """
    axes = None
    if dynamic:
        axes = {'images': DYNAMIC_AXES}
        axes.update({name: {0: 'batch'} for name in output_names})
    try:
        with warnings.catch_warnings(), torch.no_grad(), \
                exportable_adaptive_pooling(module):
            warnings.simplefilter('ignore')
            torch.onnx.export(
                module.eval(), (example, ), path, dynamo=False,
                opset_version=opset, input_names=['images'],
                output_names=list(output_names), dynamic_axes=axes,
                do_constant_folding=True)
    except Exception as exc:
        raise _exporter_error(exc, opset) from None
    if metadata:
        # lazy: onnx takes ~1 s to import; only this step reads ONNX files
        import onnx
        model = onnx.load(path)
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, path)
