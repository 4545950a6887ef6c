"""Building the model of an mm config; its input shape and task."""
import copy
from typing import Any, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import import_modules_from_strings

from ..errors import ConfigError
from ..utils.config import dataset_pipeline, find_module_dicts
from .deploy_form import BACKBONE_TYPES

DEFAULT_SIZE = (224, 224)
#: the package's one vocabulary of tasks: mm base class module -> task
TASKS = (('mmpretrain.', 'classifier'), ('mmseg.', 'segmentor'),
         ('mmdet.', 'detector'))


def build_model(cfg, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` as mmengine's ``Runner`` does (``custom_imports``,
    ``default_scope``, ``data_preprocessor``); ``device='meta'``: no memory."""
    if cfg.get('custom_imports'):
        try:
            import_modules_from_strings(**cfg['custom_imports'])
        except ImportError as exc:
            raise ConfigError(f'custom_imports of the config failed: {exc}. '
                              f'Is the package installed?') from None
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None and isinstance(
            model_cfg, dict) and 'data_preprocessor' not in model_cfg:
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    try:
        with torch.device(device):
            return MODELS.build(model_cfg)
    except KeyError as exc:
        # only an unknown type ("X is not in the model registry") gets the
        # hint; any other error in a model's code surfaces as it is
        if 'registry' not in str(exc):
            raise
        raise ConfigError(
            f'cannot build the model of the config '
            f'({exc.args[0] if exc.args else exc}). The config needs '
            f'default_scope="mmpretrain", "mmseg" or "mmdet" and '
            f'custom_imports=dict(imports=["repvgg_mm"]).') from None


def _hw(size: Any, wh_order: bool = False) -> Optional[Tuple[int, int]]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, Sequence) and len(size) == 2 and all(
            isinstance(s, int) for s in size):
        return (size[1], size[0]) if wh_order else (size[0], size[1])
    return None


def _size_from_pipeline(pipeline) -> Optional[Tuple[int, int]]:
    # the last transform that fixes the size wins (Resize -> CenterCrop)
    for transform in reversed(pipeline):
        name = str(transform.get('type', '')).split('.')[-1]
        size = None
        if 'Crop' in name and 'crop_size' in transform:
            # mmpretrain's CenterCrop takes (w, h); mmseg's crops take (h, w)
            size = _hw(transform['crop_size'], name == 'CenterCrop')
        elif name in ('Resize', 'ResizeEdge') and 'scale' in transform:
            size = _hw(transform['scale'], True)  # (w, h)
        if size:
            return size
    return None


def input_size(cfg) -> Tuple[Tuple[int, int], str]:
    """``((H, W), where it came from)`` of a test input of ``cfg``, padded as
    the preprocessor pads (mmdet's 1333x800 is 800x1344)."""
    model = cfg.model
    preprocessor = model.get('data_preprocessor') or {}
    for where, size in (
        ('model.test_cfg.crop_size',
         (model.get('test_cfg') or {}).get('crop_size')),
        ('model.data_preprocessor.size', preprocessor.get('size')),
        ('crop_size', cfg.get('crop_size')),
    ):
        if _hw(size):
            return _hw(size), where
    divisor = preprocessor.get('pad_size_divisor')
    divisor = divisor if isinstance(divisor, int) and divisor > 1 else 1
    for loader in ('test_dataloader', 'val_dataloader'):
        hw = _size_from_pipeline(dataset_pipeline(cfg.get(loader)) or ())
        if hw:
            return (tuple(-(-s // divisor) * divisor for s in hw),
                    f'{loader} pipeline')
    return DEFAULT_SIZE, 'default'


def input_channels(cfg) -> int:
    """``in_channels`` of the first RepVGG backbone of ``cfg.model`` (3)."""
    for _, node in find_module_dicts(cfg.model, BACKBONE_TYPES):
        if 'in_channels' in node:
            return int(node['in_channels'])
    return 3


def task_of(model: nn.Module) -> str:
    """The model's task, from the mm base class (``Base*``) it derives from."""
    bases = [c for c in type(model).__mro__ if c.__name__.startswith('Base')]
    for module_prefix, kind in TASKS:
        if any(c.__module__.startswith(module_prefix) for c in bases):
            return kind
    return 'module'
