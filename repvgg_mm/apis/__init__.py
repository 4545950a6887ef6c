"""One public function per job; each ``tools/*.py`` calls one of them.

====================  ======================  ==========================
job                   function                tool
====================  ======================  ==========================
train                 :func:`train_model`     ``tools/train.py``
evaluate              :func:`test_model`      ``tools/test.py``
convert to deploy     :func:`convert_checkpoint`  ``convert_deploy.py``
import weights        :func:`import_weights`  ``tools/convert_weights.py``
export ONNX/OpenVINO  :func:`export_model`    ``tools/export.py`` [deploy]
INT8 quantization     :func:`quantize_model`  ``tools/quantize.py`` [deploy]
fastest deployment    :func:`deploy_model`    ``tools/deploy.py`` [deploy]
====================  ======================  ==========================
"""
import importlib

from .convert import convert_checkpoint
from .import_weights import import_weights
from .test import test_model
from .train import train_model

#: API functions of the deployment layer: they need the ``[deploy]`` extra,
#: so they are imported on first use (``repvgg_mm.apis.export_model``), and
#: without the extra that use raises ``MissingDependency``.
_DEPLOY_API = {'export_model': '.export', 'quantize_model': '.quantize',
               'deploy_model': '.deploy'}


def __getattr__(name):
    if name in _DEPLOY_API:
        return getattr(importlib.import_module(_DEPLOY_API[name], __name__),
                       name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['convert_checkpoint', 'deploy_model', 'export_model',
           'import_weights', 'quantize_model', 'test_model', 'train_model']
