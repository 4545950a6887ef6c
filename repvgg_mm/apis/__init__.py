"""One public function per job; each ``tools/*.py`` calls one of them.

====================  ======================  ==========================
job                   function                tool
====================  ======================  ==========================
train                 :func:`train_model`     ``tools/train.py``
evaluate              :func:`test_model`      ``tools/test.py``
convert to deploy     :func:`convert_checkpoint`  ``convert_deploy.py``
import weights        :func:`import_weights`  ``tools/convert_weights.py``
benchmark speed       :func:`benchmark`       ``tools/benchmark_fps.py``
export ONNX/OpenVINO  :func:`export_model`    ``tools/export.py``
INT8 quantization     :func:`quantize_model`  ``tools/quantize.py``
====================  ======================  ==========================
"""
from .benchmark import benchmark
from .convert import convert_checkpoint
from .export import export_model
from .import_weights import import_weights
from .quantize import quantize_model
from .test import test_model
from .train import train_model

__all__ = ['benchmark', 'convert_checkpoint', 'export_model',
           'import_weights', 'quantize_model', 'test_model', 'train_model']
