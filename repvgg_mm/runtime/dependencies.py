"""The ``[deploy]`` extra: checked once, when :mod:`repvgg_mm.runtime` is
imported, without importing the (slow) packages themselves."""
import importlib.util
from typing import List

from ..errors import MissingDependency

#: import name -> what ``pip install repvgg_mm[deploy]`` installs for it
DEPLOY_PACKAGES = {
    'onnx': 'onnx',
    'onnxruntime': 'onnxruntime',
    'openvino': 'openvino',
    'nncf': 'nncf',
}


def missing_deploy_packages() -> List[str]:
    """The packages of the ``[deploy]`` extra that cannot be imported."""
    missing = []
    for name, dist in DEPLOY_PACKAGES.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # sys.modules[name] is None
            found = False
        if not found:
            missing.append(dist)
    return missing


def require_deploy_extra() -> None:
    """Raise :class:`MissingDependency` unless the deploy extra is there."""
    missing = missing_deploy_packages()
    if missing:
        verb = 'is' if len(missing) == 1 else 'are'
        raise MissingDependency(
            f'deployment (ONNX / OpenVINO export, runtime sessions, INT8) '
            f'needs {", ".join(missing)}, which {verb} '
            f'not installed. Install the deploy extra: '
            f'pip install "repvgg_mm[deploy]" (or, in a checkout, '
            f'pip install -e ".[deploy]").')
