"""The exported inference graph, and the metadata written with it: a
(deploy-form) mm model taking float32 NCHW images in 0-255 in the channel
order the pipeline loads them, the data preprocessor's flip and mean/std
inside (a segmentor's logits resized bilinearly to the input, as
``EncoderDecoder`` does with ``test_cfg.mode='whole'``)."""
import importlib
import json
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..converters.config_model import task_of
from ..converters.deploy_form import BACKBONE_TYPES
from ..utils.config import find_module_dicts
from ..utils.verify import flatten_outputs
from ..version import __version__

OUTPUT_KIND = {
    'classifier': 'class logits (N, num_classes); softmax gives probabilities',
    'segmentor': 'per-pixel class logits (N, num_classes, H, W) at the '
    'input resolution, whole-image inference; argmax over dim 1 gives '
    'the label map',
    'detector': 'raw head outputs (mode="tensor"); box decoding and NMS '
    'are not in the graph',
}


class Preprocessing(NamedTuple):
    to_rgb: bool  #: flip BGR -> RGB (3-channel inputs)
    mean: Optional[Tuple[float, ...]]
    std: Optional[Tuple[float, ...]]


def preprocessing_of(model: nn.Module) -> Preprocessing:
    """The channel flip and mean/std of ``model.data_preprocessor``."""
    dp = getattr(model, 'data_preprocessor', None)
    flip = any(bool(getattr(dp, name, False)) for name in (
        '_channel_conversion', 'channel_conversion', 'to_rgb'))
    if dp is not None and getattr(dp, '_enable_normalize', False):
        return Preprocessing(flip, tuple(dp.mean.flatten().tolist()),
                             tuple(dp.std.flatten().tolist()))
    return Preprocessing(flip, None, None)


class InferenceGraph(nn.Module):
    """``images (N, C, H, W) float32 0-255 -> outputs``."""

    def __init__(self, model: nn.Module, prep: Preprocessing, channels: int):
        super().__init__()
        self.model = model.eval()
        self.task = task_of(model)
        self.flip = prep.to_rgb and channels == 3
        self.normalize = prep.mean is not None
        if self.normalize:
            shape = (1, -1, 1, 1)
            self.register_buffer('mean', torch.tensor(prep.mean).view(shape))
            self.register_buffer('std', torch.tensor(prep.std).view(shape))

    @classmethod
    def of(cls, model: nn.Module) -> 'InferenceGraph':
        """The graph of ``model`` with its own data preprocessor."""
        prep = preprocessing_of(model)
        return cls(model, prep, len(prep.mean) if prep.mean else 3)

    def output_names(self, num: int) -> List[str]:
        if num == 1 and self.task in ('classifier', 'segmentor'):
            return ['scores' if self.task == 'classifier' else 'seg_logits']
        return [f'output_{i}' for i in range(num)]

    def forward(self, images: torch.Tensor):
        x = images.flip(1) if self.flip else images
        if self.normalize:
            x = (x - self.mean) / self.std
        tensor = self.task in ('classifier', 'segmentor', 'detector')
        outs = flatten_outputs(self.model(x, mode='tensor') if tensor else
                               self.model(x))
        if self.task == 'segmentor':
            return F.interpolate(outs[0], size=images.shape[2:],
                                 mode='bilinear',
                                 align_corners=self.model.align_corners)
        return outs[0] if len(outs) == 1 else tuple(outs)


def class_names(cfg, checkpoint: Any,
                num_classes: Optional[int]) -> Optional[List[str]]:
    """From the checkpoint's ``meta.dataset_meta``, else the config's test
    (val) dataset: its ``metainfo``, or its class's ``METAINFO``; only when
    they are as many as the model's classes."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    names = ((meta if isinstance(meta, dict) else {}).get('dataset_meta')
             or {}).get('classes')
    for loader in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        if names:
            break
        names = (dataset.get('metainfo') or {}).get('classes') or \
            dataset.get('classes')
        if not names or isinstance(names, str):
            try:
                cls = importlib.import_module(
                    f'{cfg.default_scope}.registry').DATASETS.get(
                        dataset.get('type'))
            except Exception:  # no scope, an unregistered type: no names
                cls = None
            names = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    if not names or num_classes is not None and len(names) != num_classes:
        return None
    return list(names)


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
                   channels: int, prep: Preprocessing, dynamic: bool,
                   names: Optional[List[str]]) -> Dict[str, str]:
    """The strings for ONNX ``metadata_props`` / OpenVINO ``rt_info``."""
    meta = dict(
        producer=f'repvgg_mm {__version__}', config=config, task=task,
        arch=arch_of(cfg), input='images: float32 (N, C, H, W), 0-255',
        input_size=f'{shape[0]}x{shape[1]}', dynamic=str(dynamic).lower(),
        # LoadImageFromFile decodes colour images as BGR (mmcv.imfrombytes)
        channel_order='GRAY' if channels == 1 else 'BGR',
        preprocessing=json.dumps(dict(bgr_to_rgb=prep.to_rgb, mean=prep.mean,
                                      std=prep.std)),
        output=OUTPUT_KIND.get(task, 'the model\'s forward outputs'))
    if names:
        meta['class_names'] = json.dumps(names)
    return meta
