"""Ways to run a model: memory format, compilation, precision, threads.

A :class:`Serving` is one combination; :func:`prepare` turns a model and an
input batch into a zero-argument callable that the runner times. The
candidates of ``--best`` (:func:`candidates`) are the combinations this
tool knows to help on the device; the fastest is picked by measurement.

* ``channels_last``: NHWC tensors, the layout oneDNN (CPU) and cuDNN
  tensor-core kernels are fastest with.
* ``jit``: ``torch.jit.trace`` + ``torch.jit.freeze`` +
  ``torch.jit.optimize_for_inference``: weights become constants, conv+ReLU
  (and conv+add+ReLU) are fused into oneDNN ops with pre-packed weights.
* ``compile``: ``torch.compile`` (inductor); on CPU with inductor's
  ``freezing`` so weights are pre-packed and conv+ReLU fused.
* ``amp``: ``torch.autocast`` to fp16 / bf16 (not the paper's fp32).
* ``threads``: ``torch.set_num_threads`` while this serving runs.
* ``chunk<N>``: run the batch as consecutive micro-batches of N images and
  concatenate the outputs (same result). On a CPU the activations of the
  first layers of a micro-batch stay in the caches; at batch 128 a RepVGG
  stem output alone is 300 MB.
* runtimes (CPU): ``onnxruntime`` (ONNX Runtime fp32), ``openvino`` (fp32) and
  ``openvino-bf16`` (OpenVINO's bf16 inference precision): the model's
  forward is exported to ONNX (:func:`repvgg_mm.runtime.export_onnx`) and
  run by :func:`repvgg_mm.runtime.open_session` with the same thread count
  as torch (``<N>threads`` or torch's setting).
* INT8 runtimes: ``onnxruntime-int8`` (ONNX Runtime static QDQ) and
  ``openvino-int8`` (NNCF): the exported graph is quantized
  (:func:`repvgg_mm.runtime.quantize.quantize_graph`) after calibration on
  random inputs -- the speed does not depend on the calibration data; the
  accuracy does, so measure that with ``tools/deploy.py``. Not in
  the ``--best`` candidates: an INT8 model is not the same function.

bf16 servings (``bf16`` autocast, ``openvino-bf16``) need native bf16 on
the CPU (AVX-512 BF16 or AMX, :func:`repvgg_mm.runtime.supports_bf16`);
without it they are skipped with a note (:class:`ServingUnavailable`).
"""
import contextlib
import copy
import os.path as osp
import tempfile
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn

from repvgg_mm.errors import MissingDependency

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
#: runtime servings: name -> (backend, precision)
RUNTIMES = {'onnxruntime': ('onnxruntime', 'fp32'),
            'openvino': ('openvino', 'fp32'),
            'openvino-bf16': ('openvino', 'bf16'),
            'onnxruntime-int8': ('onnxruntime', 'int8'),
            'openvino-int8': ('openvino', 'int8')}
#: calibration batches of the INT8 servings (random, shaped like the timed
#: batch: speed does not depend on them; accuracy does, tools/quantize.py)
INT8_CALIBRATION_BATCHES = 2


class ServingUnavailable(Exception):
    """This serving cannot run here (a one-line note, not an error)."""


class Serving(NamedTuple):
    channels_last: bool = False
    jit: bool = False
    compile: bool = False
    amp: Optional[str] = None  #: None (fp32), 'fp16' or 'bf16'
    threads: Optional[int] = None  #: None: leave torch's setting
    chunk: Optional[int] = None  #: micro-batch size; None: the whole batch
    runtime: Optional[str] = None  #: None (torch) or a key of RUNTIMES

    @property
    def name(self) -> str:
        if self.runtime:
            threads = [f'{self.threads}threads'] if self.threads else []
            return '+'.join([self.runtime] + threads)
        parts = [flag for flag in ('channels_last', 'jit', 'compile')
                 if getattr(self, flag)]
        if self.amp:
            parts.append(self.amp)
        if self.threads:
            parts.append(f'{self.threads}threads')
        if self.chunk:
            parts.append(f'chunk{self.chunk}')
        return '+'.join(parts) or 'eager'


def _runtime_name(part: str) -> str:
    """``part`` with an earlier spelling of a runtime serving resolved by
    the deploy layer's alias table (without the [deploy] extra there are no
    runtime servings, hence no aliases)."""
    try:
        from repvgg_mm.runtime.session import ALIASES  # lazy: [deploy] extra
    except MissingDependency:
        return part
    return ALIASES.get(part, part)


def parse_serving(name: str) -> Serving:
    """Inverse of :attr:`Serving.name` (``'channels_last+jit'``)."""
    fields = {}
    for part in name.split('+'):
        if part in ('channels_last', 'jit', 'compile'):
            fields[part] = True
        elif part in AMP_DTYPES:
            fields['amp'] = part
        elif part.endswith('threads') and part[:-7].isdigit():
            fields['threads'] = int(part[:-7])
        elif part.startswith('chunk') and part[5:].isdigit() and int(
                part[5:]) > 0:
            fields['chunk'] = int(part[5:])
        elif _runtime_name(part) in RUNTIMES:
            fields['runtime'] = _runtime_name(part)
        elif part != 'eager':
            raise ValueError(
                f'unknown serving "{part}" in "{name}"; use "+"-joined '
                f'parts of: eager, channels_last, jit, compile, fp16, bf16, '
                f'<N>threads, chunk<N>, or a runtime: {", ".join(RUNTIMES)}')
    serving = Serving(**fields)
    if serving.jit and serving.compile:
        raise ValueError(f'"{name}": jit and compile exclude each other')
    if serving.runtime and any((serving.channels_last, serving.jit,
                                serving.compile, serving.amp,
                                serving.chunk)):
        raise ValueError(f'"{name}": a runtime serving combines only with '
                         f'<N>threads')
    return serving


def candidates(device: torch.device, base: Serving) -> List[Serving]:
    """What ``--best`` tries for the deployed form (``base``: amp/threads)."""
    kept = dict(amp=base.amp, threads=base.threads)
    combos = [dict(), dict(channels_last=True), dict(compile=True),
              dict(channels_last=True, compile=True)]
    if device.type == 'cpu':  # TorchScript's oneDNN fusion is CPU-only
        combos[2:2] = [dict(jit=True), dict(channels_last=True, jit=True)]
        combos.append(dict(channels_last=True, chunk=16))
    servings = [Serving(**combo, **kept) for combo in combos]
    if device.type == 'cpu' and base.amp is None:
        from repvgg_mm.utils.cpu import supports_bf16
        runtimes = ['onnxruntime', 'openvino']
        if supports_bf16():
            servings.append(Serving(channels_last=True, amp='bf16',
                                    threads=base.threads))
            runtimes.append('openvino-bf16')
        servings += [Serving(runtime=r, threads=base.threads)
                     for r in runtimes]
    return servings


@contextlib.contextmanager
def num_threads(threads: Optional[int]):
    if not threads:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _autocast(serving: Serving, device: torch.device):
    if not serving.amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[serving.amp])


def prepare(model: nn.Module, inputs: torch.Tensor, serving: Serving
            ) -> Tuple[Callable[[], object], float, object]:
    """``(forward, setup seconds, first output)``; ``forward()`` runs one
    batch.

    ``model`` is not modified: the serving works on a copy.
    """
    device = inputs.device
    if device.type == 'cpu' and 'bf16' in (serving.amp, RUNTIMES.get(
            serving.runtime, (None, None))[1]):
        from repvgg_mm.utils.cpu import supports_bf16
        if not supports_bf16():
            raise ServingUnavailable(
                f'{serving.name}: skipped, this CPU has no native bf16 '
                f'(no avx512_bf16 / amx_bf16 in /proc/cpuinfo)')
    if serving.runtime:
        return _runtime_serving(model, inputs, serving)
    start = time.perf_counter()
    model = copy.deepcopy(model)
    if serving.channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    model.eval()
    parts = inputs.split(serving.chunk) if serving.chunk else [inputs]
    with num_threads(serving.threads), torch.no_grad():
        if serving.jit:
            with _autocast(serving, device):
                traced = torch.jit.trace(model, parts[0],
                                         check_trace=False, strict=False)
            model = torch.jit.optimize_for_inference(
                torch.jit.freeze(traced.eval()))
        elif serving.compile:
            model = _compiled(model, device)

    def forward():
        with num_threads(serving.threads), _autocast(serving, device):
            if len(parts) == 1:
                return model(parts[0])
            return _concat([model(part) for part in parts])

    # one call now: compiles (not inside the first timed round) and shows
    # whether this model runs with this serving at all
    with torch.inference_mode():
        output = forward()
    return forward, time.perf_counter() - start, output


def _concat(outputs: list):
    """Join the outputs of consecutive micro-batches along the batch dim."""
    first = outputs[0]
    if torch.is_tensor(first):
        return torch.cat(outputs)
    if isinstance(first, (tuple, list)):
        return type(first)(_concat(list(group)) for group in zip(*outputs))
    if isinstance(first, dict):
        return {key: _concat([o[key] for o in outputs]) for key in first}
    raise TypeError(f'cannot join micro-batch outputs of type {type(first)}')


def _compiled(model: nn.Module, device: torch.device) -> nn.Module:
    if device.type == 'cpu':
        # weights become constants: pre-packed oneDNN convs, conv+ReLU fused
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    return torch.compile(model)


def _runtime_serving(model: nn.Module, inputs: torch.Tensor,
                     serving: Serving):
    """Export ``model``'s forward to ONNX and run it in a runtime with the
    same thread count as torch."""
    from repvgg_mm.runtime.onnx_export import export_onnx
    from repvgg_mm.runtime.session import open_session
    from repvgg_mm.utils.verify import flatten_outputs
    if inputs.device.type != 'cpu':
        raise ServingUnavailable(f'{serving.name}: CPU only')
    start = time.perf_counter()
    backend, precision = RUNTIMES[serving.runtime]
    with torch.no_grad():
        num = len(flatten_outputs(model(inputs[:1])))
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'model.onnx')
        # INT8: a dynamic batch, as the calibrator batches images its way
        export_onnx(model.eval(), inputs, path,
                    [f'output_{i}' for i in range(num)],
                    dynamic=precision == 'int8')
        if precision == 'int8':
            path, precision = _int8_graph(path, backend, inputs), 'fp32'
        session = open_session(path, backend, precision,
                               threads=serving.threads
                               or torch.get_num_threads())
    batch = inputs.numpy()

    def forward():
        return session(batch)

    output = [torch.from_numpy(o) for o in forward()]
    return forward, time.perf_counter() - start, (
        output[0] if len(output) == 1 else output)


def _int8_graph(path: str, backend: str, inputs: torch.Tensor) -> str:
    """``path`` quantized to INT8, calibrated on random inputs shaped like
    ``inputs`` (speed does not depend on them); returns the INT8 graph."""
    from mmengine.logging import print_log

    from repvgg_mm.runtime.quantize import quantize_graph
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(inputs.shape, generator=gen).numpy()
               for _ in range(INT8_CALIBRATION_BATCHES)]
    print_log(f'{backend} INT8: calibrated on random inputs (the speed does '
              f'not depend on them; tools/deploy.py measures accuracy)',
              logger='current')
    out = osp.splitext(path)[0] + ('_int8.xml' if backend == 'openvino'
                                   else '_int8.onnx')
    return quantize_graph(backend, path, batches, out, progress=False)
