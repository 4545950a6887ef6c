"""OpenVINO IR (``.xml`` + ``.bin``) from an ONNX file."""
from typing import Dict, Optional

from ..errors import ConfigError


def save_openvino(onnx_path: str, xml_path: str,
                  metadata: Optional[Dict[str, str]] = None) -> None:
    """``openvino.convert_model`` + ``openvino.save_model`` with fp32
    weights (no fp16 compression); ``metadata`` goes to the IR's
    ``rt_info`` under ``model_info``."""
    # lazy: openvino takes seconds to import; only OpenVINO steps need it
    import openvino as ov
    try:
        model = ov.convert_model(onnx_path)
    except Exception as exc:
        raise ConfigError(f'OpenVINO could not convert the ONNX graph: '
                          f'{type(exc).__name__}: {str(exc)[:400]}') from None
    for key, value in (metadata or {}).items():
        model.set_rt_info(str(value), ['model_info', key])
    ov.save_model(model, xml_path, compress_to_fp16=False)
