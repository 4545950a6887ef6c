"""The QARepVGG block, RepVGG made friendly to INT8 quantization (Chu et
al., "Make RepVGG Greater Again: A Quantization-aware Approach", arXiv
2212.01593, AAAI 2024): the BNs of the 1x1 and identity branches cause
RepVGG's INT8 collapse, so the block normalises the sum instead."""
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS
from torch import Tensor

from ..fusion import qarepvgg_kernel_bias
from .repvgg_block import ConvNorm, RepVGGBlock


@MODELS.register_module()
class QARepVGGBlock(RepVGGBlock):
    """QARepVGG block: ``act(se(BN_post(BN(conv3x3(x)) + conv1x1(x) + x)))``
    with a bias-free 1x1 conv; the identity, deploy form, arguments and
    loading are :class:`RepVGGBlock`'s. Select it in a backbone with
    ``block_cfg=dict(type='QARepVGGBlock')``."""

    train_branches = ('branch_3x3', 'branch_1x1', 'post_norm')
    other_block = ('branch_1x1.conv.weight', 'RepVGGBlock')

    def _build_train_branches(self) -> None:
        args = (self.in_channels, self.out_channels)
        self.branch_3x3 = ConvNorm(*args, 3, self.stride, self.dilation,
                                   self.dilation, self.groups, self.norm_cfg)
        self.branch_1x1 = nn.Conv2d(*args, 1, self.stride, 0, 1, self.groups,
                                    bias=False)
        self.post_norm = build_norm_layer(self.norm_cfg, self.out_channels)[1]

    def _branch_sum(self, x: Tensor) -> Tensor:
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.has_identity:
            out = out + x
        return self.post_norm(out)

    def _fusion_inputs(self):
        return ('branch_3x3.conv', 'branch_1x1'), ('branch_3x3.norm',
                                                   'post_norm')

    def _fuse(self, kernels, norms):
        return qarepvgg_kernel_bias(kernels[0], norms[0], kernels[1],
                                    self.has_identity, norms[1], self.groups)
