"""Post-training INT8 of an exported (deploy-form) graph.

Two backends, both static (calibrated) quantization with INT8 weights
quantized per output channel:

* ``onnxruntime``: :func:`onnxruntime.quantization.quantize_static`, QDQ
  format, uint8 activations / int8 weights; activation ranges by
  ``minmax``, ``percentile`` (99.999 % of the histogram) or ``entropy``
  (KL divergence, the TensorRT-style calibration).
* ``openvino``: :func:`nncf.quantize` on an OpenVINO model (NNCF quantizes
  conv weights per channel by default), with its ``performance`` preset
  (symmetric activations); activation ranges by NNCF's default estimator
  (``default``), the global ``minmax``, ``quantile`` (mean of the
  1e-4 / 1 - 1e-4 quantiles of each batch) or ``histogram``.
  ``mixed`` is the default estimator with the ``mixed`` preset
  (asymmetric activations).

Both write atomically: a ``.onnx`` file, or an ``.xml`` + ``.bin`` pair;
nothing is left at the output on failure.
"""
import os
import tempfile
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..errors import ConfigError
from ..io.atomic import atomic_files, atomic_output, check_output_path
from .backends import ALIASES, backend_name, session_backend
from .session import open_session

#: INT8 backends (:mod:`.backends`' names), the default first
BACKENDS = ('openvino', 'onnxruntime')
#: calibration settings of each backend; the first is the default
METHODS = {
    'onnxruntime': ('minmax', 'percentile', 'entropy'),
    'openvino': ('default', 'minmax', 'quantile', 'histogram', 'mixed'),
}
#: what the INT8 model file of each backend ends with
SUFFIXES = {'onnxruntime': ('.onnx', ), 'openvino': ('.xml', )}


def check_backend(backend: str, method: Optional[str] = None) -> str:
    """``method`` (or the backend's default) after checking both."""
    backend = ALIASES.get(backend, backend)
    if backend not in BACKENDS:
        raise ConfigError(f'unknown backend "{backend}"; use one of '
                          f'{", ".join(BACKENDS)}.')
    if method is None:
        return METHODS[backend][0]
    if method not in METHODS[backend]:
        raise ConfigError(f'unknown calibration method "{method}" for '
                          f'{backend}; use one of '
                          f'{", ".join(METHODS[backend])}.')
    return method


def check_quantized_path(out: str, backend: str) -> str:
    """``out`` if it has the backend's suffix and can be written."""
    suffixes = SUFFIXES[backend]
    if not out or not out.endswith(suffixes):
        raise ConfigError(f'OUT "{out}" (the {backend} INT8 model) must end '
                          f'with {" or ".join(suffixes)}.')
    check_output_path(out, 'OUT')
    return out


def _calibration_bar(num_batches: int, what: str):
    print_log(f'{what}: {num_batches} calibration batches',
              logger='current')
    return ProgressBar(num_batches)


# ----------------------------------------------------------------------
# ONNX Runtime
def equal_batches(batches: Sequence[np.ndarray],
                  largest: int = 16) -> List[np.ndarray]:
    """The same images in batches of one size (the largest divisor of their
    number up to ``largest``): ORT's histogram calibrators (percentile,
    entropy) stack the outputs of all batches and fail on a short last
    one."""
    images = np.concatenate(list(batches))
    size = max(d for d in range(1, min(largest, len(images)) + 1)
               if len(images) % d == 0)
    return [images[i:i + size] for i in range(0, len(images), size)]


def _input_name(model_path: str) -> str:
    # lazy: onnx takes ~1 s to import; only this step reads ONNX files
    import onnx
    model = onnx.load(model_path, load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    if len(names) != 1:
        raise ConfigError(f'"{model_path}" has {len(names)} inputs {names}; '
                          f'quantization needs a graph with one image input.')
    return names[0]


def quantize_onnxruntime(model_path: str, batches: Sequence[np.ndarray],
                         out: str, method: str = 'minmax',
                         per_channel: bool = True,
                         progress: bool = True) -> str:
    """Static INT8 (QDQ) of the ONNX graph ``model_path``, calibrated on
    ``batches`` (graph inputs); writes ``out`` (``.onnx``) atomically."""
    from onnxruntime.quantization import (CalibrationDataReader,
                                          CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    method = check_backend('onnxruntime', method)
    check_quantized_path(out, 'onnxruntime')
    if not batches:
        raise ConfigError('no calibration data: give at least one image.')
    name = _input_name(model_path)
    batches = equal_batches(batches)
    bar = _calibration_bar(len(batches), f'ONNX Runtime {method}') \
        if progress else None

    class Reader(CalibrationDataReader):

        def __init__(self):
            self._items = iter(batches)

        def get_next(self):
            batch = next(self._items, None)
            if batch is None:
                return None
            if bar:
                bar.update()
            return {name: batch}

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
    return out


# ----------------------------------------------------------------------
# OpenVINO + NNCF
def _nncf_settings(method: str, per_channel: bool = True) -> dict:
    # lazy: nncf takes seconds to import; only OpenVINO INT8 needs it
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters, QuantizationParameters)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    estimators = dict(minmax=RangeEstimatorParametersSet.MINMAX,
                      quantile=RangeEstimatorParametersSet.MEAN_QUANTILE,
                      histogram=RangeEstimatorParametersSet.HISTOGRAM)
    preset = (nncf.QuantizationPreset.MIXED if method == 'mixed' else
              nncf.QuantizationPreset.PERFORMANCE)
    advanced = {}
    if method in estimators:
        advanced['activations_range_estimator_params'] = estimators[method]
    if not per_channel:
        advanced['weights_quantization_params'] = QuantizationParameters(
            per_channel=False)
    settings = dict(preset=preset)
    if advanced:
        settings['advanced_parameters'] = AdvancedQuantizationParameters(
            **advanced)
    return settings


def quantize_openvino(model_path: str, batches: Sequence[np.ndarray],
                      out: str, method: str = 'default',
                      per_channel: bool = True,
                      progress: bool = True) -> str:
    """INT8 of the graph ``model_path`` (``.onnx`` or ``.xml``) with NNCF,
    calibrated on ``batches``; writes ``out`` (``.xml`` + ``.bin``)
    atomically."""
    # lazy: nncf takes seconds to import; only OpenVINO INT8 needs it
    import nncf
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    method = check_backend('openvino', method)
    check_quantized_path(out, 'openvino')
    if not batches:
        raise ConfigError('no calibration data: give at least one image.')
    model = ov.Core().read_model(model_path)
    subset = sum(len(b) for b in batches)
    if progress:
        print_log(f'OpenVINO NNCF {method}: {len(batches)} calibration '
                  f'batches ({subset} images)', logger='current')
    quantized = nncf.quantize(model, nncf.Dataset(list(batches)),
                              subset_size=len(batches),
                              **_nncf_settings(method, per_channel))
    stem = os.path.splitext(out)[0]
    with atomic_files([stem + '.bin', out]) as (_, tmp_xml):
        ov.save_model(quantized, tmp_xml, compress_to_fp16=False)
    return out


def quantize_graph(backend: str, model_path: str,
                   batches: Sequence[np.ndarray], out: str,
                   method: Optional[str] = None,
                   per_channel: bool = True,
                   progress: bool = True) -> str:
    """:func:`quantize_onnxruntime` or :func:`quantize_openvino`;
    ``per_channel=False``: one scale per weight tensor (for comparison)."""
    method = check_backend(backend, method)
    if backend_name(backend) == 'onnxruntime':
        return quantize_onnxruntime(model_path, batches, out, method,
                                    per_channel, progress)
    return quantize_openvino(model_path, batches, out, method, per_channel,
                             progress)


# ----------------------------------------------------------------------
# running a graph
def inference_session(path: str, backend: str,
                      threads: Optional[int] = None
                      ) -> Callable[[np.ndarray], np.ndarray]:
    """A callable: float32 NCHW batch -> first output of the graph at
    ``path``, run by :func:`repvgg_mm.runtime.open_session` with
    ``backend`` (this module's names) in fp32 and torch's thread count."""
    check_backend(backend)
    session = open_session(path, session_backend(backend), 'fp32',
                           threads or torch.get_num_threads())
    return lambda x: session(x)[0]
