"""Deploying beyond PyTorch: ONNX / OpenVINO export, runtime sessions, INT8
and the deploy job. Without the ``[deploy]`` extra, importing it raises
:class:`~repvgg_mm.errors.MissingDependency`, found without importing them."""
import importlib.util

from ..errors import MissingDependency


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # sys.modules[name] is None
        return True


_MISSING = [n for n in ('onnx', 'onnxruntime', 'openvino', 'nncf')
            if _missing(n)]
if _MISSING:
    raise MissingDependency(
        f'deployment (ONNX / OpenVINO export, runtime sessions, INT8) needs '
        f'{", ".join(_MISSING)}, which '
        f'{"is" if len(_MISSING) == 1 else "are"} not installed. Install the '
        f'deploy extra: pip install "repvgg_mm[deploy]" (or, in a checkout, '
        f'pip install -e ".[deploy]").')

from ..utils.cpu import cpu_features, supports_bf16  # noqa: E402
from .graph import InferenceGraph, preprocessing_of  # noqa: E402
from .onnx_export import export_onnx, save_openvino  # noqa: E402
from .session import RuntimeSession, open_session  # noqa: E402

__all__ = ['InferenceGraph', 'RuntimeSession', 'cpu_features', 'export_onnx',
           'open_session', 'preprocessing_of', 'save_openvino',
           'supports_bf16']
