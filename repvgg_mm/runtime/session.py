"""Running an exported model: ONNX Runtime (``.onnx``) or OpenVINO
(``.xml`` IR, or ``.onnx`` with ``backend='openvino'``).

The one entry point is :func:`open_session`::

    from repvgg_mm.runtime import open_session
    session = open_session('work_dirs/a0.onnx')        # ONNX Runtime, fp32
    scores, = session(images)  # float32 (N, C, H, W), 0-255, pipeline order

``images`` are what the config's pipeline loads (BGR for colour images);
the graph normalises them itself. The outputs are numpy arrays, in the
order of ``session.output_names``; ``session.metadata`` holds the arch,
input size, channel order and class names written at export.
"""
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from ..errors import ConfigError
from .cpu import supports_bf16

BACKENDS = ('ort', 'openvino')
PRECISIONS = ('fp32', 'bf16')


class RuntimeSession:
    """A compiled model; call it with a float32 NCHW batch."""

    def __init__(self, run, output_names: List[str],
                 metadata: Dict[str, str], backend: str, precision: str,
                 threads: Optional[int]):
        self._run = run
        self.output_names = output_names
        self.metadata = metadata
        self.backend = backend
        self.precision = precision
        self.threads = threads

    def __call__(self, images) -> List[np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f'expected an (N, C, H, W) batch, got shape '
                             f'{images.shape}')
        return self._run(images)


def _ort(path: str, threads: Optional[int]) -> RuntimeSession:
    # lazy: only an ONNX Runtime session needs onnxruntime
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options,
                                   providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    meta = dict(session.get_modelmeta().custom_metadata_map)
    outputs = [o.name for o in session.get_outputs()]
    return RuntimeSession(lambda x: session.run(None, {name: x}), outputs,
                          meta, 'ort', 'fp32', threads)


def _ov_metadata(model) -> Dict[str, str]:
    if not model.has_rt_info(['model_info']):
        return {}
    info = model.get_rt_info(['model_info']).astype(dict)
    return {key: value.astype(str) if hasattr(value, 'astype') else
            str(value) for key, value in info.items()}


def _openvino(path: str, precision: str,
              threads: Optional[int]) -> RuntimeSession:
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    meta = _ov_metadata(model)
    if not meta and path.endswith('.onnx'):
        meta = _ort_metadata(path)
    config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16'
              else 'f32', 'NUM_STREAMS': '1'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = str(threads)
    compiled = core.compile_model(model, 'CPU', config)
    request = compiled.create_infer_request()
    outputs = [o.get_any_name() for o in compiled.outputs]

    def run(x):
        result = request.infer({0: x})
        return [np.asarray(result[o]) for o in compiled.outputs]

    return RuntimeSession(run, outputs, meta, 'openvino', precision, threads)


def _ort_metadata(path: str) -> Dict[str, str]:
    # lazy: onnx takes ~1 s to import; only this step reads ONNX files
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def open_session(path: str, backend: Optional[str] = None,
                 precision: str = 'fp32',
                 threads: Optional[int] = None) -> RuntimeSession:
    """Load an exported model for inference on the CPU.

    Args:
        path: ``.onnx`` (default backend ONNX Runtime) or ``.xml``
            (OpenVINO IR, its ``.bin`` beside it).
        backend: ``'ort'`` or ``'openvino'``; default from the suffix.
        precision: ``'fp32'``, or ``'bf16'`` (OpenVINO's inference
            precision hint; needs a CPU with AVX-512 BF16 or AMX).
        threads: intra-op threads (default: the runtime's own choice).
    """
    suffix = osp.splitext(path)[1].lower()
    if suffix not in ('.onnx', '.xml'):
        raise ConfigError(f'"{path}": expected an .onnx file or an OpenVINO '
                          f'.xml IR.')
    if not osp.isfile(path):
        raise ConfigError(f'"{path}" does not exist.')
    backend = backend or ('openvino' if suffix == '.xml' else 'ort')
    if backend not in BACKENDS:
        raise ConfigError(f'backend "{backend}": use one of {BACKENDS}.')
    if precision not in PRECISIONS:
        raise ConfigError(f'precision "{precision}": use one of '
                          f'{PRECISIONS}.')
    if backend == 'ort':
        if suffix == '.xml':
            raise ConfigError('ONNX Runtime cannot read OpenVINO IR; use '
                              'backend="openvino".')
        if precision != 'fp32':
            raise ConfigError('bf16 is offered through OpenVINO only '
                              '(backend="openvino").')
        return _ort(path, threads)
    if precision == 'bf16' and not supports_bf16():
        raise ConfigError('this CPU has no native bf16 (AVX-512 BF16 or '
                          'AMX); use precision="fp32".')
    return _openvino(path, precision, threads)
