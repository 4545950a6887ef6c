"""One public function per job; each ``tools/*.py`` calls one of them."""
import importlib

from .convert import convert_checkpoint
from .import_weights import import_weights
from .test import test_model
from .train import train_model

#: the deployment layer (``[deploy]`` extra) is imported on first use;
#: without the extra, that use raises ``MissingDependency``
_DEPLOY_API = {'export_model': '.export', 'quantize_model': '.quantize',
               'deploy_model': '.deploy'}


def __getattr__(name):
    if name in _DEPLOY_API:
        return getattr(importlib.import_module(_DEPLOY_API[name], __name__),
                       name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['convert_checkpoint', 'deploy_model', 'export_model',
           'import_weights', 'quantize_model', 'test_model', 'train_model']
