"""What the exported graph's metadata says about it."""
import importlib
import json
from typing import Any, Dict, List, Optional, Sequence

from ..converters.deploy_config import BACKBONE_TYPES
from ..utils.config import find_module_dicts
from ..version import __version__

OUTPUT_KIND = {
    'classifier': 'class logits (N, num_classes); softmax gives '
    'probabilities',
    'segmentor': 'per-pixel class logits (N, num_classes, H, W) at the '
    'input resolution, whole-image inference; argmax over dim 1 gives '
    'the label map',
    'detector': 'raw head outputs (mode="tensor"); box decoding and NMS '
    'are not in the graph',
}


def _dataset_classes(cfg) -> Optional[List[str]]:
    for loader in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        meta = dataset.get('metainfo') or {}
        names = meta.get('classes') or dataset.get('classes')
        if names and not isinstance(names, str):
            return list(names)
        if dataset.get('type') and cfg.get('default_scope'):
            registry = importlib.import_module(
                f'{cfg.default_scope}.registry').DATASETS
            cls = registry.get(dataset['type'])
            names = (getattr(cls, 'METAINFO', None) or {}).get('classes')
            if names:
                return list(names)
    return None


def class_names(cfg, checkpoint: Any,
                num_classes: Optional[int]) -> Optional[List[str]]:
    """From the checkpoint's ``meta.dataset_meta``, else the config's test
    dataset (its ``metainfo`` or its class's ``METAINFO``); only when they
    are as many as the model's classes."""
    names = None
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        names = (meta.get('dataset_meta') or {}).get('classes')
    try:
        names = names or _dataset_classes(cfg)
    except Exception:  # an unregistered dataset type: no names
        names = None
    if names and num_classes is not None and len(names) != num_classes:
        return None
    return list(names) if names else None


def arch_of(cfg) -> str:
    found = find_module_dicts(cfg.model, BACKBONE_TYPES)
    if found:
        arch = found[0][1].get('arch')
        return arch if isinstance(arch, str) else json.dumps(arch)
    backbone = cfg.model.get('backbone') or {}
    kind = backbone.get('type', type(cfg.model.get('type')).__name__)
    depth = backbone.get('depth')
    return f'{kind}-{depth}' if depth else str(kind)


def graph_metadata(cfg, config: str, task: str, shape: Sequence[int],
                   channels: int, to_rgb: bool, mean, std, dynamic: bool,
                   names: Optional[List[str]]) -> Dict[str, str]:
    """String key/values for ONNX ``metadata_props`` / OpenVINO
    ``rt_info``."""
    # LoadImageFromFile decodes colour images as BGR (mmcv.imfrombytes)
    order = 'GRAY' if channels == 1 else 'BGR'
    meta = dict(
        producer=f'repvgg_mm {__version__}', config=config, task=task,
        arch=arch_of(cfg), input='images: float32 (N, C, H, W), 0-255',
        input_size=f'{shape[0]}x{shape[1]}', dynamic=str(dynamic).lower(),
        channel_order=order,
        preprocessing=json.dumps(dict(bgr_to_rgb=to_rgb, mean=mean,
                                      std=std)),
        output=OUTPUT_KIND.get(task, 'the model\'s forward outputs'))
    if names:
        meta['class_names'] = json.dumps(names)
    return meta
