"""The RepVGG block: three branches for training, one 3x3 conv for deploy."""
import contextlib
from collections import OrderedDict
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..fusion import NormStats, equivalent_kernel_bias
from .se_layer import SEGate

#: key stems of the training-form branches, relative to the block's prefix
TRAIN_BRANCHES = ('branch_3x3', 'branch_1x1', 'branch_norm')
DEPLOY_BRANCH = 'branch_reparam'


def _channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(
        memory_format=torch.channels_last)


def check_cpu_training_layout(x: Tensor, weight: Tensor) -> None:
    """Refuse an fp32 channels_last training step on the CPU: in torch
    2.14.1 (oneDNN) its weight gradient can corrupt the heap (e.g. a stem's
    1x1 stride-2 branch on 1x3x224x224); NCHW and bf16 autocast are fine."""
    if (torch.is_grad_enabled() and not torch.is_autocast_enabled('cpu')
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and (_channels_last(x) or _channels_last(weight))):
        raise RuntimeError(
            'fp32 channels_last training on the CPU is refused: the weight '
            'gradient of oneDNN\'s channels_last fp32 convolution corrupts '
            'the heap in torch 2.14.1. Train in the default NCHW layout, or '
            'with bf16 autocast (train_model(amp=True) on a CPU with bf16).')


@contextlib.contextmanager
def spare_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Let the BN layers of ``module`` update copies of their running
    statistics and put the originals back: gradient checkpointing's
    recomputation would otherwise update them twice per step."""
    stats = ('running_mean', 'running_var', 'num_batches_tracked')
    saved = [(norm, name, getattr(norm, name)) for norm in module.modules()
             if isinstance(norm, _BatchNorm) and norm.track_running_stats
             for name in stats]
    for norm, name, buffer in saved:
        setattr(norm, name, buffer.clone())
    try:
        yield
    finally:
        for norm, name, buffer in saved:
            setattr(norm, name, buffer)


class ConvNorm(nn.Sequential):
    """A bias-free conv followed by a norm layer (``.conv``, ``.norm``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride,
                 padding, dilation, groups, norm_cfg):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                           padding, dilation, groups, bias=False),
            norm=build_norm_layer(norm_cfg, out_channels)[1]))


@MODELS.register_module()
class RepVGGBlock(BaseModule):
    """RepVGG block (paper Fig. 4): training form
    ``act(se(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)))`` (``BN(x)`` only if
    :attr:`has_identity`), deploy form ``act(se(conv3x3(x) + b))``
    (``deploy=True`` or :meth:`switch_to_deploy`). ``dilation`` applies to
    the 3x3 conv, ``se_ratio`` adds an SE gate, ``norm_cfg`` is
    BatchNorm-family, ``with_cp`` checkpoints gradients. Both forms script;
    a training-form state dict loaded into a deploy block is fused on the
    fly, the opposite raises."""

    #: mmengine's BaseModule property, which TorchScript cannot compile
    __jit_unused_properties__ = ['is_init']
    #: attributes holding the training-form branches (removed when fused)
    train_branches = TRAIN_BRANCHES
    #: the 1x1 weight key of the other block type, and that type
    other_block = ('branch_1x1.weight', 'QARepVGGBlock')

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 dilation: int = 1,
                 groups: int = 1,
                 se_ratio: Optional[int] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU', inplace=True),
                 deploy: bool = False,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups={groups} does not divide in_channels='
                             f'{in_channels} and out_channels={out_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.norm_cfg = dict(norm_cfg)
        self.with_cp = with_cp
        self.deploy = deploy
        # to fuse a training-form state dict into a deploy-form block
        self.norm_eps = build_norm_layer(self.norm_cfg, 1)[1].eps
        # the attributes of the other form stay None (for TorchScript)
        for name in (DEPLOY_BRANCH, ) + TRAIN_BRANCHES:
            setattr(self, name, None)
        if deploy:
            self.branch_reparam = self._deploy_conv()
        else:
            self._build_train_branches()
        self.se = SEGate(out_channels, se_ratio) if se_ratio else None
        self.act = (build_activation_layer(act_cfg)
                    if act_cfg is not None else nn.Identity())

    def _build_train_branches(self) -> None:
        args = (self.in_channels, self.out_channels)
        self.branch_3x3 = ConvNorm(*args, 3, self.stride, self.dilation,
                                   self.dilation, self.groups, self.norm_cfg)
        self.branch_1x1 = ConvNorm(*args, 1, self.stride, 0, 1, self.groups,
                                   self.norm_cfg)
        self.branch_norm = (
            build_norm_layer(self.norm_cfg, self.in_channels)[1]
            if self.has_identity else None)

    @property
    def has_identity(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1

    def _deploy_conv(self, **factory_kwargs) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride,
                         self.dilation, self.dilation, self.groups, bias=True,
                         **factory_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            if self.training:
                conv = (self.branch_reparam if self.branch_reparam is not None
                        else self.branch_3x3.conv)
                check_cpu_training_layout(x, conv.weight)
            if self.with_cp and x.requires_grad:
                return self._checkpointed_forward(x)
        return self._forward(x)

    @torch.jit.unused
    def _checkpointed_forward(self, x: Tensor) -> Tensor:
        return cp.checkpoint(
            self._forward, x, use_reentrant=False, context_fn=lambda: (
                contextlib.nullcontext(), spare_norm_statistics(self)))

    def _forward(self, x: Tensor) -> Tensor:
        # ``is not None`` on a submodule / None attribute is decided when
        # TorchScript compiles: only the present form's code is compiled
        if self.branch_reparam is not None:
            out = self.branch_reparam(x)
        else:
            out = self._branch_sum(x)
        if self.se is not None:
            out = self.se(out)
        return self.act(out)

    def _branch_sum(self, x: Tensor) -> Tensor:
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.branch_norm is not None:
            out = out + self.branch_norm(x)
        return out

    def _fusion_inputs(self) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """(convs, BN layers) the fusion reads, named relative to the block."""
        norms = ('branch_3x3.norm', 'branch_1x1.norm') + (
            ('branch_norm', ) if self.has_identity else ())
        return ('branch_3x3.conv', 'branch_1x1.conv'), norms

    def _fuse(self, kernels: List[Tensor],
              norms: List[NormStats]) -> Tuple[Tensor, Tensor]:
        return equivalent_kernel_bias(
            kernels[0], norms[0], kernels[1], norms[1],
            norms[2] if self.has_identity else None, self.groups)

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """Differentiable 3x3 kernel and bias equal to the training form."""
        if self.deploy:
            return self.branch_reparam.weight, self.branch_reparam.bias
        convs, norms = self._fusion_inputs()
        return self._fuse(
            [self.get_submodule(name).weight for name in convs],
            [NormStats.from_module(self.get_submodule(name))
             for name in norms])

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fuse the branches into ``branch_reparam``. Idempotent."""
        if self.deploy:
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        # built on the meta device: no random init of weights about to be set
        conv = self._deploy_conv(device='meta', dtype=kernel.dtype).to_empty(
            device=kernel.device)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        for name in self.train_branches:
            delattr(self, name)
            setattr(self, name, None)
        self.branch_reparam = conv
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, *args):
        # raise, not error_msgs: mmengine's non-strict load only warns
        has_train = any(
            k.startswith(f'{prefix}branch_3x3.') for k in state_dict)
        has_deploy = f'{prefix}{DEPLOY_BRANCH}.weight' in state_dict
        if self.deploy and has_train and not has_deploy:
            self._fuse_state_dict(state_dict, prefix)
        elif not self.deploy and has_deploy and not has_train:
            raise RuntimeError(
                f'"{prefix}{DEPLOY_BRANCH}.weight" is a deploy-form (fused) '
                f'weight, but this RepVGG block is in training form: a fused '
                f'kernel cannot be split back into branches. Build the model '
                f'with deploy=True (e.g. backbone.deploy=True, or the '
                f'*_deploy config) to load this checkpoint.')
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _fuse_state_dict(self, state_dict, prefix) -> None:
        """Replace training-form keys under ``prefix`` by the fused kernel."""
        convs, norms = self._fusion_inputs()
        required = [f'{prefix}{name}.weight' for name in convs] + [
            f'{prefix}{name}.{stat}' for name in norms
            for stat in ('running_mean', 'running_var')]
        missing = [k for k in required if k not in state_dict]
        if missing:
            other_key, other_type = self.other_block
            hint = (f' The keys are those of a {other_type}: build the '
                    f'model with block_cfg=dict(type="{other_type}").'
                    if prefix + other_key in state_dict else '')
            raise RuntimeError(
                f'cannot fuse the training-form weights of '
                f'{type(self).__name__} "{prefix[:-1]}" into its deploy '
                f'form: missing {missing}.{hint}')
        kernel, bias = self._fuse(
            [state_dict[f'{prefix}{name}.weight'] for name in convs],
            [NormStats.from_state_dict(state_dict, f'{prefix}{name}.',
                                       self.norm_eps) for name in norms])
        stems = tuple(f'{prefix}{name}.' for name in self.train_branches)
        for key in [k for k in state_dict if k.startswith(stems)]:
            del state_dict[key]
        state_dict[f'{prefix}{DEPLOY_BRANCH}.weight'] = kernel
        state_dict[f'{prefix}{DEPLOY_BRANCH}.bias'] = bias
