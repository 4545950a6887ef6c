"""Running an exported model: ONNX Runtime (``.onnx``) or OpenVINO (``.xml``
IR, or ``.onnx`` with ``backend='openvino'``)::

    session = open_session('work_dirs/a0.onnx')        # ONNX Runtime, fp32
    scores, = session(images)  # float32 (N, C, H, W), 0-255, pipeline order

A session checks its input (a warning for 0-1 values) and raises every
misfit, the runtimes' own shape errors included, as :class:`ConfigError`;
``session.metadata`` holds what the export wrote (arch, classes, ...).
"""
import dataclasses
import os.path as osp
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from ..utils.cpu import supports_bf16

#: the runtimes' names (OpenVINO, the INT8 default, first)
BACKENDS = ('openvino', 'onnxruntime')
#: earlier releases' short spellings, accepted on input, never written
ALIASES = {'ort': 'onnxruntime', 'ort-int8': 'onnxruntime-int8'}
#: how ONNX Runtime and OpenVINO (``ParameterMismatch``, its CPU plugin's
#: size check) say that an input does not fit the graph
RUNTIME_SHAPE_ERRORS = ('ParameterMismatch', 'INVALID_ARGUMENT',
                        'Got invalid dimensions',
                        'input tensor size is not equal')
PRECISIONS = ('fp32', 'bf16')


def backend_name(name: str) -> str:
    """The project's name of backend ``name`` (an alias resolved)."""
    name = ALIASES.get(name, name)
    if name not in BACKENDS:
        raise ConfigError(f'unknown backend "{name}"; use one of '
                          f'{", ".join(BACKENDS)}.')
    return name


@dataclasses.dataclass
class RuntimeSession:
    """A compiled model; call it with a float32 NCHW batch."""

    run: Callable[[np.ndarray], List[np.ndarray]]
    output_names: List[str]
    metadata: Dict[str, str]
    backend: str
    #: (N, C, H, W) of the graph's input, None where dynamic
    input_shape: Tuple[Optional[int], ...] = (None, ) * 4
    range_warned: bool = False

    def _expected(self) -> str:
        return '(' + ', '.join('?' if d is None else str(d)
                               for d in self.input_shape) + ')'

    def check_input(self, images) -> np.ndarray:
        """``images`` as float32 NCHW, or :class:`ConfigError` on a misfit."""
        array = np.asarray(images)
        if array.dtype.kind not in 'fiu':
            raise ConfigError(
                f'the images are {array.dtype}; the graph takes real numbers '
                f'(float32, or uint8 pixels), 0-255.')
        shape = tuple(array.shape)
        if array.ndim != 4:
            hint = ' (one image: add the batch axis, images[None])' \
                if array.ndim == 3 else ''
            raise ConfigError(f'expected an (N, C, H, W) batch, got shape '
                              f'{shape}{hint}; the graph takes '
                              f'{self._expected()}.')
        channels = self.input_shape[1]
        if channels is not None and shape[1] != channels:
            layout = (' It looks like NHWC: transpose it with '
                      'images.transpose(0, 3, 1, 2).'
                      if shape[3] == channels else '')
            raise ConfigError(
                f'the batch of shape {shape} has {shape[1]} channels on axis '
                f'1; the graph takes {channels} (NCHW, {self._expected()}).'
                f'{layout}')
        for axis, name in ((0, 'batch size'), (2, 'height'), (3, 'width')):
            want = self.input_shape[axis]
            if want is not None and shape[axis] != want:
                raise ConfigError(
                    f'the batch of shape {shape} has {name} {shape[axis]}; '
                    f'the graph takes {self._expected()} (exported without '
                    f'`dynamic=True`). Resize the images, or export with '
                    f'`dynamic=True`.')
        array = np.ascontiguousarray(array, dtype=np.float32)
        high = float(np.max(np.abs(array))) if array.size else 0
        if not self.range_warned and 0 < high <= 1 and '0-255' in \
                self.metadata.get('input', ''):
            self.range_warned = True
            warnings.warn(f'the images are in 0-1 (max |x| = {high:.3g}) '
                          f'but the graph takes 0-255 pixel values (it '
                          f'normalises them itself): multiply by 255, or '
                          f'every prediction may be the same class.',
                          stacklevel=3)
        return array

    def scores(self, images) -> np.ndarray:
        """The first output (class scores or per-pixel logits)."""
        return self(images)[0]

    def __call__(self, images) -> List[np.ndarray]:
        images = self.check_input(images)
        try:
            return self.run(images)
        except Exception as exc:  # the runtime's own shape errors
            text = str(exc)
            if any(t in text for t in RUNTIME_SHAPE_ERRORS):
                raise ConfigError(
                    f'the batch of shape {images.shape} does not fit the '
                    f'graph\'s input {self._expected()}: '
                    f'{text.strip().splitlines()[0][:300]}') from None
            raise


def _dims(shape) -> List[Optional[int]]:
    """A runtime's input shape as ints, None where dynamic."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape][:4]
    return dims + [None] * (4 - len(dims))


def onnx_metadata(path: str) -> Dict[str, str]:
    """The ``metadata_props`` of the ONNX file ``path``."""
    # lazy: onnx takes ~1 s to import; only this step reads ONNX files
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _onnxruntime(path: str, threads: Optional[int]) -> RuntimeSession:
    # lazy: only an ONNX Runtime session needs onnxruntime
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ORT's own choice
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options,
                                   providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return RuntimeSession(lambda x: session.run(None, {name: x}),
                          [o.name for o in session.get_outputs()],
                          dict(session.get_modelmeta().custom_metadata_map),
                          'onnxruntime', _dims(session.get_inputs()[0].shape))


def _openvino(path: str, precision: str,
              threads: Optional[int]) -> RuntimeSession:
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    if model.has_rt_info(['model_info']):
        meta = {key: value.astype(str) if hasattr(value, 'astype') else
                str(value) for key, value in model.get_rt_info(
                    ['model_info']).astype(dict).items()}
    else:
        meta = onnx_metadata(path) if path.endswith('.onnx') else {}
    config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16'
              else 'f32', 'NUM_STREAMS': '1'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = str(threads)
    compiled = core.compile_model(model, 'CPU', config)
    request = compiled.create_infer_request()
    return RuntimeSession(
        lambda x: [np.asarray(v) for v in request.infer({0: x}).values()],
        [o.get_any_name() for o in compiled.outputs], meta, 'openvino',
        _dims(d.get_length() if d.is_static else None
              for d in compiled.inputs[0].get_partial_shape()))


def open_session(path: str, backend: Optional[str] = None,
                 precision: str = 'fp32',
                 threads: Optional[int] = None) -> RuntimeSession:
    """Load an exported model for inference on the CPU: ``path`` an
    ``.onnx`` (default backend ONNX Runtime) or an OpenVINO ``.xml`` (its
    ``.bin`` beside it); ``precision='bf16'``: OpenVINO's inference
    precision hint (needs AVX-512 BF16 or AMX); ``threads``: intra-op
    threads (default: the runtime's own choice)."""
    suffix = osp.splitext(path)[1].lower()
    if suffix not in ('.onnx', '.xml'):
        raise ConfigError(f'"{path}": expected an .onnx file or an OpenVINO '
                          f'.xml IR.')
    if not osp.isfile(path):
        raise ConfigError(f'"{path}" does not exist.')
    backend = backend_name(backend or ('openvino' if suffix == '.xml' else
                                       'onnxruntime'))
    if precision not in PRECISIONS:
        raise ConfigError(f'precision "{precision}": use one of {PRECISIONS}.')
    if backend == 'onnxruntime':
        if suffix == '.xml':
            raise ConfigError('ONNX Runtime cannot read OpenVINO IR; use '
                              'backend="openvino".')
        if precision != 'fp32':
            raise ConfigError('bf16 is offered through OpenVINO only '
                              '(backend="openvino").')
        return _onnxruntime(path, threads)
    if precision == 'bf16' and not supports_bf16():
        raise ConfigError('this CPU has no native bf16 (AVX-512 BF16 or '
                          'AMX); use precision="fp32".')
    return _openvino(path, precision, threads)
