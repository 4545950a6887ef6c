"""Deploying beyond PyTorch: ONNX / OpenVINO export, runtime sessions and
INT8 quantization.

* :func:`repvgg_mm.apis.export_model` (``tools/export.py``) writes the file;
* :func:`open_session` runs it (ONNX Runtime or OpenVINO);
* :func:`repvgg_mm.apis.quantize_model` (``tools/quantize.py``) makes INT8
  graphs (:mod:`.quantize`, calibration data: :mod:`.calibration`).
"""
from .cpu import cpu_features, supports_bf16
from .graph import InferenceGraph, Preprocessing, preprocessing_of, task_of
from .onnx_export import export_onnx
from .openvino_export import save_openvino
from .session import RuntimeSession, open_session

__all__ = ['InferenceGraph', 'Preprocessing', 'RuntimeSession',
           'cpu_features', 'export_onnx', 'open_session', 'preprocessing_of',
           'save_openvino', 'supports_bf16', 'task_of']
