"""The QARepVGG block: RepVGG made friendly to INT8 quantization.

Chu et al., "Make RepVGG Greater Again: A Quantization-aware Approach"
(arXiv 2212.01593, AAAI 2024). The paper traces RepVGG's INT8 collapse to
the fused kernels' outlier weights and large activation variance, caused by
the identity branch's BN and the custom L2; its final block drops the BNs of
the 1x1 and identity branches and normalises the sum instead.
"""
from typing import Tuple

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS
from torch import Tensor

from ..fusion import NormStats, qarepvgg_kernel_bias
from .repvgg_block import DEPLOY_BRANCH, ConvNorm, RepVGGBlock

#: key stems of the training-form branches, relative to the block's prefix
QA_TRAIN_BRANCHES = ('branch_3x3', 'branch_1x1', 'post_norm')


@MODELS.register_module()
class QARepVGGBlock(RepVGGBlock):
    """QARepVGG block: ``act(se(BN_post(BN(conv3x3(x)) + conv1x1(x) + x)))``.

    The 1x1 conv has neither bias nor BN; the identity (only where
    ``in_channels == out_channels`` and ``stride == 1``) has no BN; one BN
    (``post_norm``) follows the sum. :meth:`switch_to_deploy` folds all of it,
    the post-sum BN included, into one 3x3 conv with bias, so the deploy form
    ``act(se(conv3x3(x) + b))`` is the same as :class:`RepVGGBlock`'s and
    serves, exports and quantizes the same way.

    Arguments as :class:`RepVGGBlock`. Select it in a backbone with
    ``RepVGGMM(..., block_cfg=dict(type='QARepVGGBlock'))``.

    State-dict keys: ``branch_3x3.{conv,norm}.*``, ``branch_1x1.weight``,
    ``post_norm.*`` (training form), ``branch_reparam.*`` (deploy form),
    ``se.*``. Loading follows :class:`RepVGGBlock`: a training-form state
    dict is fused into a deploy block, the opposite raises.
    """

    train_branches = QA_TRAIN_BRANCHES

    def _build_train_branches(self) -> None:
        self.branch_3x3 = ConvNorm(self.in_channels, self.out_channels, 3,
                                   self.stride, self.dilation, self.dilation,
                                   self.groups, self.norm_cfg)
        self.branch_1x1 = nn.Conv2d(self.in_channels, self.out_channels, 1,
                                    self.stride, 0, 1, self.groups,
                                    bias=False)
        self.post_norm = build_norm_layer(self.norm_cfg, self.out_channels)[1]

    def _branch_sum(self, x: Tensor) -> Tensor:
        """The branches summed and normalised (before SE and activation)."""
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.has_identity:
            out = out + x
        return self.post_norm(out)

    # ------------------------------------------------------------------
    # re-parameterization
    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """Differentiable 3x3 kernel and bias equal to the training form."""
        if self.deploy:
            return self.branch_reparam.weight, self.branch_reparam.bias
        return qarepvgg_kernel_bias(
            self.branch_3x3.conv.weight,
            NormStats.from_module(self.branch_3x3.norm),
            self.branch_1x1.weight, self.has_identity,
            NormStats.from_module(self.post_norm), self.groups)

    def _fuse_state_dict(self, state_dict, prefix) -> None:
        """Replace training-form keys under ``prefix`` by the fused kernel."""
        p3, p1, ppost = (f'{prefix}{name}.' for name in QA_TRAIN_BRANCHES)
        required = [p3 + 'conv.weight', p3 + 'norm.running_mean',
                    p3 + 'norm.running_var', p1 + 'weight',
                    ppost + 'running_mean', ppost + 'running_var']
        missing = [k for k in required if k not in state_dict]
        if missing:
            hint = ''
            if p1 + 'conv.weight' in state_dict:
                hint = (' The keys are those of a RepVGGBlock (a 1x1 branch '
                        'with BN): build the model with the block type the '
                        'checkpoint was trained with (block_cfg).')
            raise RuntimeError(
                f'cannot fuse the training-form weights of QARepVGG block '
                f'"{prefix[:-1]}" into its deploy form: missing {missing}.'
                f'{hint}')
        eps = self.norm_eps
        kernel, bias = qarepvgg_kernel_bias(
            state_dict[p3 + 'conv.weight'],
            NormStats.from_state_dict(state_dict, p3 + 'norm.', eps),
            state_dict[p1 + 'weight'], self.has_identity,
            NormStats.from_state_dict(state_dict, ppost, eps), self.groups)
        for key in [k for k in state_dict if k.startswith((p3, p1, ppost))]:
            del state_dict[key]
        state_dict[f'{prefix}{DEPLOY_BRANCH}.weight'] = kernel
        state_dict[f'{prefix}{DEPLOY_BRANCH}.bias'] = bias
