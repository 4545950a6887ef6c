"""The ways the deploy job can serve a model on this machine.

Every serving is one callable on the exported graph's input (float32 NCHW,
0-255, the pipeline's channel order) that returns the first output (class
scores or per-pixel logits), so all are evaluated and timed on the same
images:

==================  =========  =========  ==================================
serving             runtime    precision  what
==================  =========  =========  ==================================
torch-train         torch      fp32       the training form, eager (what
                                          you trained; the speed baseline,
                                          never shipped)
torch               torch      fp32       the deploy form, eager
torch-channels_last torch      fp32       ... NHWC tensors (oneDNN's layout)
torch-jit           torch      fp32       ... traced, frozen, optimised for
                                          inference (conv+ReLU fused)
onnxruntime         ONNX Rt.   fp32       the exported graph
openvino            OpenVINO   fp32
openvino-bf16       OpenVINO   bf16       OpenVINO's bf16 inference
                                          precision (CPUs with native bf16)
onnxruntime-int8    ONNX Rt.   int8       static QDQ, per-channel weights,
                                          calibrated on the train split
openvino-int8       OpenVINO   int8       NNCF, calibrated on the train split
openvino-int8-ac    OpenVINO   int8/fp32  NNCF with accuracy control (only
                                          when plain INT8 misses the bound)
==================  =========  =========  ==================================
"""
import copy
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
import torch

from ..errors import ConfigError
from .backends import session_backend
from .cpu import supports_bf16

#: name -> (runtime, precision of the ceiling it is compared with)
SERVINGS = {
    'torch-train': ('torch', 'fp32'),
    'torch': ('torch', 'fp32'),
    'torch-channels_last': ('torch', 'fp32'),
    'torch-jit': ('torch', 'fp32'),
    'onnxruntime': ('onnxruntime', 'fp32'),
    'openvino': ('openvino', 'fp32'),
    'openvino-bf16': ('openvino', 'bf16'),
    'onnxruntime-int8': ('onnxruntime', 'int8'),
    'openvino-int8': ('openvino', 'int8'),
    'openvino-int8-ac': ('openvino', 'int8'),
}
#: the speed baseline and the accuracy reference
BASELINE, FP32_SERVING = 'torch-train', 'torch'
#: what a user may list in ``servings`` (the candidates to ship)
SELECTABLE = tuple(n for n in SERVINGS if n not in (
    BASELINE, 'openvino-int8-ac'))
#: earlier spellings accepted in ``servings``
ALIASES = {'ort': 'onnxruntime', 'ort-int8': 'onnxruntime-int8',
           'eager': 'torch'}


class Serving(NamedTuple):
    name: str
    runtime: str
    precision: str
    run: Callable[[np.ndarray], np.ndarray]
    path: Optional[str] = None  #: the model file it runs (runtimes)


def check_servings(names: Optional[List[str]]) -> List[str]:
    """The candidates to ship: ``names`` (aliases resolved, checked) or
    all this CPU can run. The fp32 reference ``torch`` is built (first)
    whether it is a candidate or not; ``openvino-int8-ac`` is a candidate
    with ``openvino-int8``."""
    if names is None:
        chosen = [n for n in SELECTABLE
                  if n != 'openvino-bf16' or supports_bf16()]
    else:
        chosen = []
        for name in names:
            name = ALIASES.get(name, name)
            if name in chosen:
                continue
            if name not in SELECTABLE:
                raise ConfigError(
                    f'unknown serving "{name}"; use some of '
                    f'{", ".join(SELECTABLE)} (torch-train, the training '
                    f'form, is the speed baseline and always timed).')
            if name == 'openvino-bf16' and not supports_bf16():
                raise ConfigError(
                    'openvino-bf16 needs a CPU with native bf16 (AVX-512 '
                    'BF16 or AMX), which this one has not; leave it out.')
            chosen.append(name)
    return chosen


def build_order(candidates: List[str]) -> List[str]:
    """What to build: the reference first, then the candidates."""
    return [FP32_SERVING] + [n for n in candidates if n != FP32_SERVING]


def torch_serving(name: str, model: torch.nn.Module,
                  example: np.ndarray) -> Serving:
    """``torch-train`` / ``torch`` (eager), ``torch-channels_last``,
    ``torch-jit``; ``model`` is an :class:`~.graph.InferenceGraph`."""
    model = copy.deepcopy(model).eval()
    last = name in ('torch-channels_last', 'torch-jit')
    if last:
        model = model.to(memory_format=torch.channels_last)
    if name == 'torch-jit':
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.from_numpy(example),
                                     check_trace=False, strict=False)
            model = torch.jit.optimize_for_inference(
                torch.jit.freeze(traced.eval()))

    def run(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
        if last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = model(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).numpy()

    run(example)  # traces / warms up now, not in the first timed round
    return Serving(name, 'torch', 'fp32', run)


def runtime_serving(name: str, path: str,
                    threads: Optional[int] = None) -> Serving:
    """A session of ``path`` in the serving's runtime and precision."""
    from .session import open_session
    runtime, precision = SERVINGS[name]
    session = open_session(path, session_backend(runtime),
                           'bf16' if precision == 'bf16' else 'fp32',
                           threads or torch.get_num_threads())
    return Serving(name, runtime, precision, lambda x: session(x)[0], path)


def fp32_models(onnx_path: str, xml_path: str) -> Dict[str, str]:
    """The fp32 model file each fp32 / bf16 runtime serving runs."""
    return {'onnxruntime': onnx_path, 'openvino': xml_path,
            'openvino-bf16': xml_path}
