"""The re-parameterization maths of RepVGG and QARepVGG, in one place, all
differentiable: every conversion (``switch_to_deploy``, loading a
training-form state dict into a deploy block, the hook, the converters) and
the custom L2 call these functions."""
from typing import Mapping, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


class NormStats(NamedTuple):
    """What fusing needs from a BatchNorm layer (BN, SyncBN, ...)."""

    running_mean: Tensor
    running_var: Tensor
    weight: Optional[Tensor]  # gamma; None when affine=False
    bias: Optional[Tensor]  # beta; None when affine=False
    eps: float

    @classmethod
    def from_module(cls, norm: torch.nn.Module) -> 'NormStats':
        if not isinstance(norm, _BatchNorm):
            raise TypeError(
                f'RepVGG fusion needs a BatchNorm-family layer (BN, SyncBN), '
                f'got {type(norm).__name__}. Use norm_cfg=dict(type="BN") or '
                f'dict(type="SyncBN").')
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError(
                f'{type(norm).__name__} has track_running_stats=False: it has '
                f'no running statistics, so it cannot be fused into a conv.')
        return cls(norm.running_mean, norm.running_var, norm.weight,
                   norm.bias, norm.eps)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], prefix: str,
                        eps: float) -> 'NormStats':
        """Read a BN's tensors stored under ``prefix`` (e.g. ``'x.norm.'``)."""
        return cls(state_dict[prefix + 'running_mean'],
                   state_dict[prefix + 'running_var'],
                   state_dict.get(prefix + 'weight'),
                   state_dict.get(prefix + 'bias'), eps)


def norm_scale(norm: NormStats) -> Tensor:
    """``gamma / sqrt(var + eps)`` of an eval-mode BN, as ``(C, 1, 1, 1)``."""
    gamma = norm.weight if norm.weight is not None else 1.0
    return (gamma / (norm.running_var + norm.eps).sqrt()).reshape(-1, 1, 1, 1)


def fuse_conv_norm(kernel: Tensor, norm: NormStats) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that follows a bias-free conv into the conv."""
    scale = norm_scale(norm)
    beta = norm.bias if norm.bias is not None else 0.0
    return kernel * scale, beta - norm.running_mean * scale.flatten()


def fuse_conv_bias_norm(kernel: Tensor, bias: Tensor,
                        norm: NormStats) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN after a conv *with* a bias (it shifts the mean)."""
    return fuse_conv_norm(
        kernel, norm._replace(running_mean=norm.running_mean - bias))


def pad_1x1_to_3x3(kernel: Tensor) -> Tensor:
    """Put a 1x1 kernel on the centre tap of a 3x3 kernel."""
    if kernel.shape[-2:] != (1, 1):
        raise ValueError(f'expected a 1x1 kernel, got {tuple(kernel.shape)}')
    return F.pad(kernel, [1, 1, 1, 1])


def identity_kernel(channels: int, groups: int, like: Tensor) -> Tensor:
    """The 3x3 (grouped) conv kernel that computes the identity."""
    return torch.nn.init.dirac_(
        like.new_empty(channels, channels // groups, 3, 3), groups)


def _identity_like(kernel_3x3: Tensor, groups: int) -> Tensor:
    channels = kernel_3x3.shape[0]
    if kernel_3x3.shape[1] * groups != channels:
        raise ValueError('an identity branch needs in_channels == '
                         'out_channels')
    return identity_kernel(channels, groups, kernel_3x3)


def equivalent_kernel_bias(kernel_3x3: Tensor, norm_3x3: NormStats,
                           kernel_1x1: Optional[Tensor],
                           norm_1x1: Optional[NormStats],
                           norm_identity: Optional[NormStats],
                           groups: int = 1) -> Tuple[Tensor, Tensor]:
    """The 3x3 kernel and bias equal to a RepVGG block's training form
    ``BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)``; ``kernel_1x1`` and
    ``norm_identity`` are ``None`` where the block has no such branch."""
    if kernel_3x3.shape[-2:] != (3, 3):
        raise ValueError(
            f'expected a 3x3 kernel, got {tuple(kernel_3x3.shape)}')
    kernel, bias = fuse_conv_norm(kernel_3x3, norm_3x3)
    if kernel_1x1 is not None:
        k1, b1 = fuse_conv_norm(pad_1x1_to_3x3(kernel_1x1), norm_1x1)
        kernel, bias = kernel + k1, bias + b1
    if norm_identity is not None:
        kid, bid = fuse_conv_norm(_identity_like(kernel_3x3, groups),
                                  norm_identity)
        kernel, bias = kernel + kid, bias + bid
    return kernel, bias


def qarepvgg_kernel_bias(kernel_3x3: Tensor, norm_3x3: NormStats,
                         kernel_1x1: Tensor, has_identity: bool,
                         post_norm: NormStats,
                         groups: int = 1) -> Tuple[Tensor, Tensor]:
    """The 3x3 kernel and bias equal to a QARepVGG block's training form
    ``BN_post(BN(conv3x3(x)) + conv1x1(x) + x)``: the bias-free branches add
    to the kernel, then ``BN_post`` folds in."""
    kernel, bias = equivalent_kernel_bias(kernel_3x3, norm_3x3, None, None,
                                          None, groups)
    kernel = kernel + pad_1x1_to_3x3(kernel_1x1)
    if has_identity:
        kernel = kernel + _identity_like(kernel_3x3, groups)
    return fuse_conv_bias_norm(kernel, bias, post_norm)
