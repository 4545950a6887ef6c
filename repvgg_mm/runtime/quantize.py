"""Post-training INT8 of an exported (deploy-form) graph, written atomically:
static calibration with ONNX Runtime's ``quantize_static`` or NNCF, INT8
weights per output channel (the methods: docs/quantization.md)."""
import os
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..errors import ConfigError
from ..io.atomic import atomic_files, atomic_output
from ..io.output_guard import guard_output
from .evaluate import evaluate_sessions, evaluation_batches, graph_inputs, top1
from .session import backend_name

#: calibration settings of each backend; the first is the default
METHODS = {
    'onnxruntime': ('minmax', 'percentile', 'entropy'),
    'openvino': ('default', 'minmax', 'quantile', 'histogram', 'mixed'),
}
#: what the INT8 model file of each backend ends with
SUFFIXES = {'onnxruntime': '.onnx', 'openvino': '.xml'}


def check_settings(backend: str, method: Optional[str], out: str) -> str:
    """``method`` (or the backend's default) after checking it, ``backend``
    and ``out`` (the backend's suffix, a place it can be written)."""
    backend = backend_name(backend)
    if method is not None and method not in METHODS[backend]:
        raise ConfigError(f'unknown calibration method "{method}" for '
                          f'{backend}; use one of '
                          f'{", ".join(METHODS[backend])}.')
    if not out or not out.endswith(SUFFIXES[backend]):
        raise ConfigError(f'OUT "{out}" (the {backend} INT8 model) must end '
                          f'with {SUFFIXES[backend]}.')
    guard_output(out, 'OUT')
    return METHODS[backend][0] if method is None else method


def equal_batches(batches: Sequence[np.ndarray],
                  largest: int = 16) -> List[np.ndarray]:
    """The same images in batches of one size (the largest divisor of their
    number up to ``largest``): ORT's histogram calibrators (percentile,
    entropy) stack all batches' outputs, failing on a short last one."""
    images = np.concatenate(list(batches))
    size = max(d for d in range(1, min(largest, len(images)) + 1)
               if len(images) % d == 0)
    return [images[i:i + size] for i in range(0, len(images), size)]


def _onnxruntime(model_path: str, batches: Sequence[np.ndarray], out: str,
                 method: str, per_channel: bool, progress: bool) -> None:
    # lazy: only ONNX Runtime INT8 needs its quantization tools
    from onnxruntime.quantization import (CalibrationDataReader,
                                          CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    batches = equal_batches(batches)
    if progress:
        print_log(f'ONNX Runtime {method}: {len(batches)} calibration '
                  f'batches', logger='current')
    bar = ProgressBar(len(batches)) if progress else None

    class Reader(CalibrationDataReader):
        # the input of every graph of export_onnx
        items = iter([{'images': batch} for batch in batches])

        def get_next(self):
            item = next(self.items, None)
            if bar and item is not None:
                bar.update()
            return item

    methods = dict(minmax=CalibrationMethod.MinMax,
                   percentile=CalibrationMethod.Percentile,
                   entropy=CalibrationMethod.Entropy)
    with tempfile.TemporaryDirectory() as work, atomic_output(out) as tmp:
        prepared = os.path.join(work, 'prepared.onnx')
        # shape inference + graph optimisation (ORT's recommended step)
        quant_pre_process(model_path, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared, tmp, Reader(), quant_format=QuantFormat.QDQ,
            per_channel=per_channel, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=methods[method],
            extra_options=dict(CalibTensorRangeSymmetric=False))


def _save_ir(model, out: str) -> None:
    """``model`` as ``out`` (``.xml``) + its ``.bin``, fp32, atomically."""
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    with atomic_files([os.path.splitext(out)[0] + '.bin', out]) as (_, xml):
        ov.save_model(model, xml, compress_to_fp16=False)


def _openvino(model_path: str, batches: Sequence[np.ndarray], out: str,
              method: str, per_channel: bool, progress: bool) -> None:
    # lazy: nncf, openvino take seconds to import; only OpenVINO INT8 uses them
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters, QuantizationParameters)
    from nncf.quantization.range_estimator import \
        RangeEstimatorParametersSet as Ranges
    ranges = dict(minmax=Ranges.MINMAX, quantile=Ranges.MEAN_QUANTILE,
                  histogram=Ranges.HISTOGRAM)
    advanced = {}
    if method in ranges:
        advanced['activations_range_estimator_params'] = ranges[method]
    if not per_channel:
        advanced['weights_quantization_params'] = QuantizationParameters(
            per_channel=False)
    if progress:
        print_log(f'OpenVINO NNCF {method}: {len(batches)} calibration '
                  f'batches ({sum(len(b) for b in batches)} images)',
                  logger='current')
    _save_ir(nncf.quantize(
        ov.Core().read_model(model_path), nncf.Dataset(list(batches)),
        subset_size=len(batches), preset=nncf.QuantizationPreset.MIXED if
        method == 'mixed' else nncf.QuantizationPreset.PERFORMANCE,
        advanced_parameters=AdvancedQuantizationParameters(**advanced)
        if advanced else None), out)


def quantize_graph(backend: str, model_path: str,
                   batches: Sequence[np.ndarray], out: str,
                   method: Optional[str] = None, per_channel: bool = True,
                   progress: bool = True) -> str:
    """INT8 of ``model_path`` at ``out``, calibrated on ``batches`` by
    ``method`` (:data:`METHODS`); ``per_channel=False``: per tensor."""
    method = check_settings(backend, method, out)
    if not batches:
        raise ConfigError('no calibration data: give at least one image.')
    quantize = _openvino if backend_name(backend) == 'openvino' \
        else _onnxruntime
    quantize(model_path, batches, out, method, per_channel, progress)
    return out


def float_layers(model) -> Dict[str, int]:
    """``dict(int8=..., float=...)``: convs / matmuls of an OpenVINO model
    whose input comes through a FakeQuantize (INT8) or not."""
    counts = dict(int8=0, float=0)
    for op in model.get_ordered_ops():
        if op.get_type_name() in ('Convolution', 'GroupConvolution', 'MatMul'):
            source = op.input_value(0).get_node().get_type_name()
            counts['int8' if source == 'FakeQuantize' else 'float'] += 1
    return counts


def quantize_with_accuracy_control(cfg, model, model_path: str,
                                   batches: Sequence[np.ndarray], out: str,
                                   max_drop: float, plain_path: str) -> dict:
    """INT8 of ``model_path`` at ``out`` within ``max_drop`` points of its
    val metric (NNCF returns the costliest layers to float until then);
    returns ``dict(path, layers, plain_layers)``: the layers in INT8 /
    float, and those of the plain INT8 model at ``plain_path``."""
    # lazy: nncf, openvino take seconds to import; only OpenVINO INT8 uses them
    import nncf
    import openvino as ov
    _, loader = evaluation_batches(cfg)
    meta = getattr(loader.dataset, 'metainfo', None)

    def validate(compiled, data) -> float:
        result = evaluate_sessions(cfg, model, {
            'int8': lambda x: compiled(x)[0]}, False, data, meta)
        metric = top1(result['metrics']['int8'])
        return float('nan') if metric is None else metric

    print_log(f'NNCF accuracy control: max drop {max_drop:g} points on '
              f'{len(loader.dataset)} val images', logger='current')
    quantized = nncf.quantize_with_accuracy_control(
        ov.Core().read_model(model_path),
        calibration_dataset=nncf.Dataset(list(batches)),
        # validation_fn gets the raw batches, NNCF's ranker the graph input
        validation_dataset=nncf.Dataset(
            list(loader), lambda batch: graph_inputs(batch['inputs'])),
        validation_fn=validate, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(batches))
    _save_ir(quantized, out)
    return dict(path=out, layers=float_layers(quantized),
                plain_layers=float_layers(ov.Core().read_model(plain_path)))
