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

A session checks what it is fed against the graph (:meth:`RuntimeSession.
check_input`): a real-number dtype, rank 4, the graph's channels, NCHW
(an NHWC batch is named as such), the graph's fixed sizes; and it warns
once when the values look like 0-1 floats for a graph that takes 0-255
(or the reverse). ONNX Runtime's and OpenVINO's own shape errors (OpenVINO's
``ParameterMismatch``) become the same :class:`ConfigError`.
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from .cpu import supports_bf16

BACKENDS = ('ort', 'openvino')
#: how ONNX Runtime and OpenVINO (``ParameterMismatch``, its CPU plugin's
#: size check) say that an input does not fit the graph
RUNTIME_SHAPE_ERRORS = ('ParameterMismatch', 'INVALID_ARGUMENT',
                        'Got invalid dimensions',
                        'input tensor size is not equal')
PRECISIONS = ('fp32', 'bf16')


class RuntimeSession:
    """A compiled model; call it with a float32 NCHW batch."""

    def __init__(self, run, output_names: List[str],
                 metadata: Dict[str, str], backend: str, precision: str,
                 threads: Optional[int],
                 input_shape: Sequence[Optional[int]] = (None, ) * 4):
        self._run = run
        self.output_names = output_names
        self.metadata = metadata
        self.backend = backend
        self.precision = precision
        self.threads = threads
        #: (N, C, H, W) of the graph's input, None where dynamic
        self.input_shape = tuple(input_shape)
        self._range_warned = False

    def _expected(self) -> str:
        return '(' + ', '.join('?' if d is None else str(d)
                               for d in self.input_shape) + ')'

    def check_input(self, images) -> np.ndarray:
        """``images`` as the graph's float32 NCHW input, or
        :class:`ConfigError` naming what does not fit."""
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
                    f'--dynamic). Resize the images, or export with '
                    f'--dynamic.')
        array = np.ascontiguousarray(array, dtype=np.float32)
        self._check_range(array)
        return array

    def _check_range(self, array: np.ndarray) -> None:
        if self._range_warned or not array.size:
            return
        expected = self.metadata.get('input', '')
        high = float(np.max(np.abs(array)))
        if '0-255' in expected and 0 < high <= 1.0:
            message = ('the images are in 0-1 (max |x| = %.3g) but the graph '
                       'takes 0-255 pixel values (it normalises them '
                       'itself): multiply by 255, or every prediction may '
                       'be the same class.' % high)
        elif '0-1' in expected and high > 1.5:
            message = ('the images look like 0-255 pixel values (max |x| = '
                       '%.3g) but the graph takes 0-1: divide by 255.' % high)
        else:
            return
        self._range_warned = True
        warnings.warn(message, stacklevel=3)

    def __call__(self, images) -> List[np.ndarray]:
        images = self.check_input(images)
        try:
            return self._run(images)
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
    dims = []
    for d in list(shape)[:4]:
        try:
            if hasattr(d, 'is_static'):  # openvino.Dimension
                value = d.get_length() if d.is_static else -1
            else:  # ONNX Runtime: an int, or a name / None when dynamic
                value = int(d)
        except (TypeError, ValueError):
            value = -1
        dims.append(value if value > 0 else None)
    return dims + [None] * (4 - len(dims))


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
                          meta, 'ort', 'fp32', threads,
                          _dims(session.get_inputs()[0].shape))


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

    return RuntimeSession(run, outputs, meta, 'openvino', precision, threads,
                          _dims(compiled.inputs[0].get_partial_shape()))


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
