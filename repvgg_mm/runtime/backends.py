"""The runtimes' names: one per backend throughout the project.

``onnxruntime`` (ONNX Runtime) and ``openvino`` (OpenVINO, with NNCF for
INT8). The short spelling ``ort`` of earlier releases is accepted as an
alias on input and never written.
"""
from ..errors import ConfigError

BACKENDS = ('onnxruntime', 'openvino')
#: old spellings accepted on input
ALIASES = {'ort': 'onnxruntime'}


def backend_name(name: str) -> str:
    """The project's name of backend ``name`` (an alias resolved)."""
    name = ALIASES.get(name, name)
    if name not in BACKENDS:
        raise ConfigError(f'unknown backend "{name}"; use one of '
                          f'{", ".join(BACKENDS)}.')
    return name


def session_backend(name: str) -> str:
    """What :func:`repvgg_mm.runtime.session.open_session` calls the
    backend (it still spells ONNX Runtime ``'ort'``)."""
    return 'ort' if backend_name(name) == 'onnxruntime' else 'openvino'
