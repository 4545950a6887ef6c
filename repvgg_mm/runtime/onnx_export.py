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
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import ConfigError, VerificationError
from ..io.output_guard import disk_full_error
from .adaptive_pool import exportable_adaptive_pooling

#: images axes that ``dynamic=True`` leaves free
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}
#: ONNX Runtime only guarantees opset 7 and above ("ONNX Runtime only
#: *guarantees* support for models stamped with opset version 7 or above",
#: its load warning; opset 5/6 graphs fail with NOT_IMPLEMENTED on Relu(1))
ORT_MIN_OPSET = 7


def opset_range() -> Tuple[int, int]:
    """The opsets that torch's TorchScript exporter (``dynamo=False``) and
    ONNX Runtime both serve: torch 2.14.1 reports 7-20
    (``torch.onnx._constants``; 21+ only with a warning)."""
    try:
        from torch.onnx import _constants
        low = _constants.ONNX_MIN_OPSET
        high = _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):  # a torch without these names
        low, high = 7, 20
    return max(low, ORT_MIN_OPSET), high


def check_opset(opset) -> None:
    """Refuse, before any work, an opset outside :func:`opset_range`."""
    low, high = opset_range()
    if isinstance(opset, bool) or not isinstance(opset, int) or not (
            low <= opset <= high):
        raise ConfigError(
            f'--opset {opset} is not supported: the exporter (torch '
            f'{torch.__version__.split("+")[0]}, TorchScript) and ONNX '
            f'Runtime both serve opsets {low} to {high}. Give --opset in '
            f'that range (default 17).')


def check_onnx_file(path: str) -> None:
    """``onnx.checker`` (full check, with shape inference) and an ONNX
    Runtime load of the written file; :class:`VerificationError` if either
    refuses it."""
    import onnx  # lazy: the [deploy] extra
    import onnxruntime as ort  # lazy: the [deploy] extra
    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as exc:
        raise VerificationError(
            f'the exported ONNX graph fails onnx.checker: '
            f'{str(exc).strip()[:400]}. Nothing was written.') from None
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(path, options,
                             providers=['CPUExecutionProvider'])
    except Exception as exc:
        raise VerificationError(
            f'ONNX Runtime cannot load the exported graph: '
            f'{str(exc).strip()[:400]}. Nothing was written; try another '
            f'--opset.') from None


def _exporter_error(exc: Exception, opset: int, path: str) -> Exception:
    full = disk_full_error(exc, path)
    if full is not None:
        return full
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

    The opset is checked first (:func:`check_opset`), the written file
    last (:func:`check_onnx_file`).

    Raises:
        ConfigError: the exporter failed (the message names the operator).
        OutputError: the disk is full.
        VerificationError: the written graph is refused by onnx.checker
            or ONNX Runtime.
    """
    check_opset(opset)
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
        raise _exporter_error(exc, opset, path) from None
    if metadata:
        # lazy: onnx takes ~1 s to import; only this step reads ONNX files
        import onnx
        model = onnx.load(path)
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, path)
    check_onnx_file(path)
