"""The fusion maths, checked against the layers it replaces."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from repvgg_mm.fusion import (NormStats, equivalent_kernel_bias,
                              fuse_conv_norm, identity_kernel, pad_1x1_to_3x3)


def _random_bn(c, affine=True, eps=1e-5):
    bn = nn.BatchNorm2d(c, affine=affine, eps=eps)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    if affine:
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -1, 1)
    return bn.eval()


@pytest.mark.parametrize('affine,eps', [(True, 1e-5), (False, 1e-3)])
def test_fuse_conv_norm_matches_conv_then_bn(affine, eps):
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    bn = _random_bn(6, affine, eps)
    x = torch.randn(2, 4, 9, 7)
    kernel, bias = fuse_conv_norm(conv.weight, NormStats.from_module(bn))
    with torch.no_grad():
        err = (bn(conv(x)) - F.conv2d(x, kernel, bias, padding=1)).abs().max()
    assert err < 1e-5


@pytest.mark.parametrize('groups', [1, 2, 4])
def test_identity_kernel_is_identity(groups):
    x = torch.randn(2, 8, 5, 6)
    y = F.conv2d(x, identity_kernel(8, groups, x), padding=1, groups=groups)
    assert torch.equal(y, x)


def test_pad_1x1_puts_kernel_on_centre_tap():
    k = torch.randn(3, 2, 1, 1)
    padded = pad_1x1_to_3x3(k)
    assert padded.shape == (3, 2, 3, 3)
    assert torch.equal(padded[:, :, 1, 1], k[:, :, 0, 0])
    assert padded.abs().sum() == k.abs().sum()


def test_equivalent_kernel_is_differentiable():
    w3 = torch.randn(4, 4, 3, 3, requires_grad=True)
    w1 = torch.randn(4, 4, 1, 1, requires_grad=True)
    stats = NormStats.from_module(_random_bn(4))
    kernel, bias = equivalent_kernel_bias(w3, stats, w1, stats, stats)
    (kernel.square().sum() + bias.sum()).backward()
    assert w3.grad is not None and w3.grad.abs().sum() > 0
    assert w1.grad is not None and w1.grad.abs().sum() > 0


def test_non_batchnorm_is_rejected_with_a_clear_error():
    with pytest.raises(TypeError, match='BatchNorm-family'):
        NormStats.from_module(nn.GroupNorm(2, 4))
    with pytest.raises(ValueError, match='track_running_stats=False'):
        NormStats.from_module(nn.BatchNorm2d(4, track_running_stats=False))


def test_identity_branch_needs_square_kernel():
    stats = NormStats.from_module(_random_bn(4))
    with pytest.raises(ValueError, match='in_channels == out_channels'):
        equivalent_kernel_bias(torch.randn(4, 2, 3, 3), stats, None, None,
                               stats, groups=1)
