"""Deploying beyond PyTorch: ONNX / OpenVINO export, runtime sessions and
INT8 quantization. Needs the ``[deploy]`` extra (onnx, onnxruntime,
openvino, nncf); importing this subpackage without it raises
:class:`~repvgg_mm.errors.MissingDependency` naming the install command.

* :func:`repvgg_mm.apis.export_model` (``tools/export.py``) writes the file;
* :func:`open_session` runs it (ONNX Runtime or OpenVINO);
* :func:`repvgg_mm.apis.quantize_model` (``tools/quantize.py``) makes INT8
  graphs (:mod:`.quantize`, calibration data: :mod:`.calibration`).
"""
from .dependencies import require_deploy_extra

require_deploy_extra()

from .cpu import cpu_features, supports_bf16  # noqa: E402
from .graph import (InferenceGraph, Preprocessing, preprocessing_of,  # noqa
                    task_of)
from .onnx_export import export_onnx  # noqa: E402
from .openvino_export import save_openvino  # noqa: E402
from .session import RuntimeSession, open_session  # noqa: E402

__all__ = ['InferenceGraph', 'Preprocessing', 'RuntimeSession',
           'cpu_features', 'export_onnx', 'open_session', 'preprocessing_of',
           'require_deploy_extra', 'save_openvino', 'supports_bf16',
           'task_of']
