"""Writing an ONNX file of a module, and the OpenVINO IR made from it."""
import contextlib
import re
import warnings
from typing import Dict, Iterator, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError, VerificationError
from ..io.output_guard import disk_full_error

#: images axes that ``dynamic=True`` leaves free
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}
#: the opsets torch 2.14.1's TorchScript exporter serves (21+ only with a
#: warning) and ONNX Runtime guarantees (7 and above: opset 5/6 graphs fail
#: with NOT_IMPLEMENTED on Relu(1))
OPSET_RANGE = (7, 20)


def pooling_matrix(n, bins: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """(bins, n): row ``i`` averages adaptive pooling's bin ``i`` along an
    axis of length ``n``, inputs ``floor(i n / bins)`` to
    ``ceil((i + 1) n / bins) - 1`` (ATen's ``AdaptiveAveragePooling``)."""
    index = torch.arange(bins, device=device)
    start = torch.div(index * n, bins, rounding_mode='floor')
    end = torch.div((index + 1) * n + bins - 1, bins, rounding_mode='floor')
    position = torch.arange(n, device=device)
    inside = (position[None, :] >= start[:, None]) & (
        position[None, :] < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


class MatrixAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` as ``P_h x P_w^T``, for the export: torch
    2.14.1's exporter writes a non-global ``adaptive_avg_pool2d`` (PSPNet's
    pyramid, mmseg ``PPM``) as a fixed ``AveragePool`` and refuses it unless
    the size is static and a multiple of the bins. The pooling is linear and
    separable, so this is exact up to rounding, and right on dynamic axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size
        bins_h, bins_w = (size, size) if isinstance(size, int) else size
        height, width = x.shape[-2], x.shape[-1]
        rows = pooling_matrix(height, bins_h or height, x.dtype, x.device)
        cols = pooling_matrix(width, bins_w or width, x.dtype, x.device)
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


@contextlib.contextmanager
def exportable_adaptive_pooling(module: nn.Module) -> Iterator[int]:
    """Within the block, ``module``'s non-global ``nn.AdaptiveAvgPool2d`` are
    :class:`MatrixAdaptiveAvgPool2d`; yields how many were swapped."""
    swapped = [(parent, name, child) for parent in module.modules()
               for name, child in parent.named_children()
               if isinstance(child, nn.AdaptiveAvgPool2d) and
               child.output_size not in (1, (1, 1))]
    try:
        for parent, name, child in swapped:
            setattr(parent, name, MatrixAdaptiveAvgPool2d(child.output_size))
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def check_opset(opset) -> None:
    """Refuse, before any work, an opset outside :data:`OPSET_RANGE`."""
    low, high = OPSET_RANGE
    if isinstance(opset, bool) or not isinstance(opset, int) or not (
            low <= opset <= high):
        raise ConfigError(
            f'`opset={opset}` is not supported: the exporter (torch '
            f'{torch.__version__.split("+")[0]}, TorchScript) and ONNX '
            f'Runtime both serve opsets {low} to {high}. Give an `opset` in '
            f'that range (default 17).')


def check_onnx_file(path: str) -> None:
    """``onnx.checker`` (full check) and an ONNX Runtime load of the
    written file; :class:`VerificationError` if either refuses it."""
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
        ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    except Exception as exc:
        raise VerificationError(
            f'ONNX Runtime cannot load the exported graph: '
            f'{str(exc).strip()[:400]}. Nothing was written; try another '
            f'`opset`.') from None


def export_onnx(module: nn.Module, example: torch.Tensor, path: str,
                output_names: Sequence[str], opset: int = 17,
                dynamic: bool = False,
                metadata: Optional[Dict[str, str]] = None) -> None:
    """Export ``module(example)`` to ``path`` (input named ``images``),
    ``metadata`` in its ``metadata_props``; the written file is checked.

    Raises:
        ConfigError: the exporter failed (the message names the operator).
        OutputError: the disk is full.
        VerificationError: onnx.checker or ONNX Runtime refuses the graph.
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
            # the TorchScript exporter keeps dynamic_axes and takes about a
            # second, where torch 2.14's default (dynamo=True, which needs
            # onnxscript) takes several; both give the same operators
            torch.onnx.export(module.eval(), (example, ), path, dynamo=False,
                              opset_version=opset, input_names=['images'],
                              output_names=list(output_names),
                              dynamic_axes=axes, do_constant_folding=True)
    except Exception as exc:
        text = str(exc).strip()
        ops = re.findall(r"export of operator (\w+)|operator '?((?:aten|"
                         r"prim)::\w+)|(Python operator \w+)", text)
        ops = sorted({name for match in ops for name in match if name})
        named = f' (operator: {", ".join(ops)})' if ops else ''
        raise disk_full_error(exc, path) or ConfigError(
            f'the ONNX exporter failed{named} at opset {opset}: '
            f'{type(exc).__name__}: {(text.splitlines() or [""])[0][:400]}. '
            f'Nothing was written. Try another `opset`, or replace the module '
            f'that uses this operator.') from None
    if metadata:
        # lazy: onnx takes ~1 s to import; only this step reads ONNX files
        import onnx
        model = onnx.load(path)
        onnx.helper.set_model_props(
            model, {key: str(value) for key, value in metadata.items()})
        onnx.save(model, path)
    check_onnx_file(path)


def save_openvino(onnx_path: str, xml_path: str,
                  metadata: Optional[Dict[str, str]] = None) -> None:
    """OpenVINO IR of an ONNX file, fp32 weights (no fp16 compression);
    ``metadata`` in its ``rt_info`` under ``model_info``."""
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    try:
        model = ov.convert_model(onnx_path)
    except Exception as exc:
        raise ConfigError(f'OpenVINO could not convert the ONNX graph: '
                          f'{type(exc).__name__}: {str(exc)[:400]}') from None
    for key, value in (metadata or {}).items():
        model.set_rt_info(str(value), ['model_info', key])
    ov.save_model(model, xml_path, compress_to_fp16=False)
