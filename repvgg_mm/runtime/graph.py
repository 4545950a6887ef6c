"""The inference graph that is exported: preprocessing + network + output.

:class:`InferenceGraph` wraps a (deploy-form) mm model so that it takes what
a user has at hand, float32 images in 0-255, NCHW, in the channel order the
config's pipeline loads them (``LoadImageFromFile`` decodes colour images as
BGR), and returns:

* classifier (mmpretrain): class scores, the head's logits (no softmax);
* segmentor (mmseg): per-pixel class logits at the input resolution
  (whole-image inference: the decode head's output resized bilinearly, as
  ``EncoderDecoder`` does with ``test_cfg.mode='whole'``);
* detector (mmdet): the raw head outputs (``mode='tensor'``); box decoding
  and NMS stay outside the graph.

The data preprocessor's channel flip and mean/std are inside the graph.
"""
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..converters.config_model import task_of
from ..utils.verify import flatten_outputs


class Preprocessing(NamedTuple):
    """What the config's data preprocessor does to an image."""

    to_rgb: bool  #: flip BGR -> RGB (3-channel inputs)
    mean: Optional[Tuple[float, ...]]
    std: Optional[Tuple[float, ...]]


def preprocessing_of(model: nn.Module) -> Preprocessing:
    """Read flip and mean/std of ``model.data_preprocessor`` (mmengine's,
    mmpretrain's, mmseg's or mmdet's)."""
    dp = getattr(model, 'data_preprocessor', None)
    flip = any(bool(getattr(dp, name, False)) for name in (
        '_channel_conversion', 'channel_conversion', 'to_rgb'))
    if dp is not None and getattr(dp, '_enable_normalize', False):
        return Preprocessing(flip, tuple(dp.mean.flatten().tolist()),
                             tuple(dp.std.flatten().tolist()))
    return Preprocessing(flip, None, None)


class InferenceGraph(nn.Module):
    """``images (N, C, H, W) float32 0-255 -> outputs``; see module doc."""

    def __init__(self, model: nn.Module, prep: Preprocessing,
                 channels: int):
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
        if self.task == 'classifier' and num == 1:
            return ['scores']
        if self.task == 'segmentor' and num == 1:
            return ['seg_logits']
        return [f'output_{i}' for i in range(num)]

    def forward(self, images: torch.Tensor):
        x = images
        if self.flip:
            x = x.flip(1)
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.task == 'segmentor':
            logits = self.model._forward(x)
            return F.interpolate(logits, size=images.shape[2:],
                                 mode='bilinear',
                                 align_corners=self.model.align_corners)
        if self.task in ('classifier', 'detector'):
            out = self.model(x, mode='tensor')
        else:
            out = self.model(x)
        outs = flatten_outputs(out)
        return outs[0] if len(outs) == 1 else tuple(outs)
