"""The re-parameterization maths of RepVGG, in one place.

Every conversion in this project (the block's ``switch_to_deploy``, loading
a training-form state dict into a deploy model, the deploy hook, the
converter and weight importers) calls :func:`equivalent_kernel_bias`.

Training form of a block (paper Sec. 3.2)::

    y = act( BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x) )

Deploy form: ``y = act(conv3x3(x) + b)``. In eval mode (BN running
statistics) the two are the same function:

* BN into conv: ``W' = W * g / sqrt(var + eps)``,
  ``b' = beta - mean * g / sqrt(var + eps)`` (each BN with its own eps);
* the 1x1 kernel is zero-padded to the centre tap of a 3x3 kernel;
* the identity is the 3x3 kernel of shape ``(C, C / groups, 3, 3)`` that is 1
  at ``[i, i % (C / groups), 1, 1]``, then fused with its BN;
* kernels and biases are summed.

The QARepVGG block (Chu et al., "Make RepVGG Greater Again: A
Quantization-aware Approach", arXiv 2212.01593, its final design) puts
the BN after the sum instead::

    y = act( BN_post( BN(conv3x3(x)) + conv1x1(x) + x ) )

:func:`qarepvgg_kernel_bias` fuses it: the three branches sum to one 3x3
kernel ``K`` whose bias ``b`` is the 3x3 branch's BN bias alone (the 1x1 conv
and the identity carry none); ``BN_post`` then folds into ``(K, b)`` like any
BN after a conv with a bias (:func:`fuse_conv_bias_norm`).

Everything here is differentiable (no ``.data``, no ``no_grad``) so the same
functions give the "equivalent kernel" of the custom L2 regulariser.
"""
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


def fuse_conv_norm(kernel: Tensor, norm: NormStats) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that follows a bias-free conv into the conv."""
    std = (norm.running_var + norm.eps).sqrt()
    gamma = norm.weight if norm.weight is not None else torch.ones_like(std)
    beta = norm.bias if norm.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    bias = beta - norm.running_mean * scale
    return kernel * scale.reshape(-1, 1, 1, 1), bias


def pad_1x1_to_3x3(kernel: Tensor) -> Tensor:
    """Put a 1x1 kernel on the centre tap of a 3x3 kernel."""
    return F.pad(kernel, [1, 1, 1, 1])


def identity_kernel(channels: int, groups: int, like: Tensor) -> Tensor:
    """The 3x3 (grouped) conv kernel that computes the identity."""
    in_per_group = channels // groups
    kernel = torch.zeros(channels, in_per_group, 3, 3, dtype=like.dtype,
                         device=like.device)
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % in_per_group, 1, 1] = 1
    return kernel


def equivalent_kernel_bias(kernel_3x3: Tensor, norm_3x3: NormStats,
                           kernel_1x1: Optional[Tensor],
                           norm_1x1: Optional[NormStats],
                           norm_identity: Optional[NormStats],
                           groups: int = 1) -> Tuple[Tensor, Tensor]:
    """The single 3x3 kernel and bias equal to the sum of a block's branches.

    Args:
        kernel_3x3: weight of the 3x3 conv, ``(C_out, C_in / groups, 3, 3)``.
        norm_3x3: the BN after it.
        kernel_1x1, norm_1x1: the 1x1 branch, or ``None`` (no such branch).
        norm_identity: the identity branch's BN, or ``None``.
        groups: conv groups of the block (the identity kernel depends on it).
    """
    if kernel_3x3.shape[-2:] != (3, 3):
        raise ValueError(
            f'expected a 3x3 kernel, got {tuple(kernel_3x3.shape)}')
    kernel, bias = fuse_conv_norm(kernel_3x3, norm_3x3)
    if kernel_1x1 is not None:
        if kernel_1x1.shape[-2:] != (1, 1):
            raise ValueError(
                f'expected a 1x1 kernel, got {tuple(kernel_1x1.shape)}')
        k1, b1 = fuse_conv_norm(pad_1x1_to_3x3(kernel_1x1), norm_1x1)
        kernel, bias = kernel + k1, bias + b1
    if norm_identity is not None:
        channels = kernel_3x3.shape[0]
        if kernel_3x3.shape[1] * groups != channels:
            raise ValueError('an identity branch needs in_channels == '
                             'out_channels')
        kid, bid = fuse_conv_norm(
            identity_kernel(channels, groups, kernel_3x3), norm_identity)
        kernel, bias = kernel + kid, bias + bid
    return kernel, bias


def fuse_conv_bias_norm(kernel: Tensor, bias: Tensor,
                        norm: NormStats) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that follows a conv *with* a bias into the conv.

    ``BN(conv(x) + b)`` = ``conv'(x) + b'`` with ``W' = W * g / s`` and
    ``b' = (b - mean) * g / s + beta`` (``s = sqrt(var + eps)``): the conv's
    bias shifts the BN's mean, so this is :func:`fuse_conv_norm` with the
    mean ``mean - b``.
    """
    return fuse_conv_norm(
        kernel, norm._replace(running_mean=norm.running_mean - bias))


def qarepvgg_kernel_bias(kernel_3x3: Tensor, norm_3x3: NormStats,
                         kernel_1x1: Tensor, has_identity: bool,
                         post_norm: NormStats,
                         groups: int = 1) -> Tuple[Tensor, Tensor]:
    """The 3x3 kernel and bias equal to a QARepVGG block's training form.

    Args:
        kernel_3x3: weight of the 3x3 conv, ``(C_out, C_in / groups, 3, 3)``.
        norm_3x3: the BN after it.
        kernel_1x1: weight of the bias-free 1x1 conv (no BN).
        has_identity: whether the block adds its input (no BN).
        post_norm: the BN applied to the sum of the branches.
        groups: conv groups of the block.
    """
    if kernel_3x3.shape[-2:] != (3, 3):
        raise ValueError(
            f'expected a 3x3 kernel, got {tuple(kernel_3x3.shape)}')
    if kernel_1x1.shape[-2:] != (1, 1):
        raise ValueError(
            f'expected a 1x1 kernel, got {tuple(kernel_1x1.shape)}')
    kernel, bias = fuse_conv_norm(kernel_3x3, norm_3x3)
    kernel = kernel + pad_1x1_to_3x3(kernel_1x1)
    if has_identity:
        channels = kernel_3x3.shape[0]
        if kernel_3x3.shape[1] * groups != channels:
            raise ValueError('an identity branch needs in_channels == '
                             'out_channels')
        kernel = kernel + identity_kernel(channels, groups, kernel_3x3)
    return fuse_conv_bias_norm(kernel, bias, post_norm)
