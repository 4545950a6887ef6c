"""Building the model of an mmpretrain / mmseg / mmdet config, and its input
shape."""
import copy
from typing import Any, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import import_modules_from_strings

from ..errors import ConfigError
from ..utils.config import dataset_pipeline, find_module_dicts
from .deploy_config import BACKBONE_TYPES

#: input size used when the config tells none
DEFAULT_SIZE = (224, 224)


def build_model(cfg, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` under the config's ``default_scope``, after its
    ``custom_imports``; ``device='meta'`` builds without allocating weights.

    A top-level ``data_preprocessor`` of the config goes into the model
    unless the model sets its own, as mmengine's ``Runner`` does.
    """

    if cfg.get('custom_imports'):
        try:
            import_modules_from_strings(**cfg['custom_imports'])
        except ImportError as exc:
            raise ConfigError(f'custom_imports of the config failed: {exc}. '
                              f'Is the package installed?') from None
    scope = cfg.get('default_scope')
    if scope:
        init_default_scope(scope)
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None and isinstance(
            model_cfg, dict) and 'data_preprocessor' not in model_cfg:
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg['data_preprocessor'] = copy.deepcopy(
            cfg.data_preprocessor)
    try:
        with torch.device(device):
            model = MODELS.build(model_cfg)
    except KeyError as exc:
        # only an unknown type gets the hint ("X is not in the model
        # registry"); any other error in a model's code surfaces as it is
        if 'registry' not in str(exc):
            raise
        reason = exc.args[0] if exc.args else exc
        raise ConfigError(
            f'cannot build the model of the config ({reason}). The config '
            f'needs default_scope="mmpretrain", "mmseg" or "mmdet" and '
            f'custom_imports=dict(imports=["repvgg_mm"]).') from None
    return model


def _hw(size: Any, wh_order: bool) -> Optional[Tuple[int, int]]:
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
        if 'Crop' in name and 'crop_size' in transform:
            # mmpretrain's CenterCrop takes (w, h); mmseg's crops take (h, w)
            size = _hw(transform['crop_size'], wh_order=name == 'CenterCrop')
        elif name in ('Resize', 'ResizeEdge') and 'scale' in transform:
            size = _hw(transform['scale'], wh_order=True)  # (w, h)
        else:
            continue
        if size:
            return size
    return None


def _padded(hw: Tuple[int, int], model) -> Tuple[int, int]:
    divisor = (model.get('data_preprocessor') or {}).get('pad_size_divisor')
    if not isinstance(divisor, int) or divisor <= 1:
        return hw
    return tuple(-(-s // divisor) * divisor for s in hw)


def input_size(cfg) -> Tuple[Tuple[int, int], str]:
    """``((H, W), where it came from)`` of a test input of ``cfg``.

    Looked up in order: ``model.test_cfg.crop_size`` (mmseg slide
    inference), ``model.data_preprocessor.size``, the config's ``crop_size``,
    the test (then val) pipeline's last crop / resize, else 224x224. A
    pipeline size is rounded up to ``model.data_preprocessor.
    pad_size_divisor`` (mmdet pads every batch so: a 1333x800 test scale is
    an 800x1344 network input).
    """
    model = cfg.model
    candidates = [
        ('model.test_cfg.crop_size', (model.get('test_cfg') or {}).get(
            'crop_size'), False),
        ('model.data_preprocessor.size', (model.get('data_preprocessor')
                                          or {}).get('size'), False),
        ('crop_size', cfg.get('crop_size'), False),
    ]
    for where, size, wh_order in candidates:
        hw = _hw(size, wh_order) if size is not None else None
        if hw:
            return hw, where
    for loader in ('test_dataloader', 'val_dataloader'):
        pipeline = dataset_pipeline(cfg.get(loader))
        hw = _size_from_pipeline(pipeline) if pipeline else None
        if hw:
            return _padded(hw, model), f'{loader} pipeline'
    return DEFAULT_SIZE, 'default'


def input_channels(cfg) -> int:
    """``in_channels`` of the first RepVGG backbone of ``cfg.model`` (3)."""
    for _, node in find_module_dicts(cfg.model, BACKBONE_TYPES):
        if 'in_channels' in node:
            return int(node['in_channels'])
    return 3


#: the package's one vocabulary of tasks: mm base class module -> task
TASKS = (('mmpretrain.', 'classifier'), ('mmseg.', 'segmentor'),
         ('mmdet.', 'detector'))


def task_of(model: nn.Module) -> str:
    """``'classifier'`` (mmpretrain), ``'segmentor'`` (mmseg),
    ``'detector'`` (mmdet) or ``'module'`` (anything else), from the mm
    base class (``Base*``) the model derives from."""
    for module_prefix, kind in TASKS:
        for cls in type(model).__mro__:
            if cls.__module__.startswith(module_prefix) and (
                    cls.__name__.startswith('Base')):
                return kind
    return 'module'
