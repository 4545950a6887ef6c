"""RepVGGBlock: branches, exact conversion, idempotence, state dicts."""
import pytest
import torch
import torch.nn as nn
from conftest import REL_TOL

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import QARepVGGBlock, RepVGGBlock
from repvgg_mm.utils.verify import relative_errors


def _convert_and_compare(block, x):
    randomize_norm_stats_(block, x)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        out = block(x)
    return relative_errors(ref, out)[0][1]


@pytest.mark.parametrize('block_type', [RepVGGBlock, QARepVGGBlock])
@pytest.mark.parametrize(
    'cin,cout,stride,dilation,groups,se',
    [(8, 8, 1, 1, 1, None), (8, 16, 2, 1, 1, None), (8, 8, 1, 2, 1, None),
     (8, 8, 1, 4, 2, None), (8, 8, 2, 2, 4, None), (16, 16, 1, 1, 4, 4),
     (4, 8, 1, 1, 1, 2)])
def test_conversion_is_exact(block_type, cin, cout, stride, dilation, groups,
                             se):
    block = block_type(cin, cout, stride=stride, dilation=dilation,
                       groups=groups, se_ratio=se)
    x = torch.randn(4, cin, 13, 10)  # non-square, odd sizes
    assert _convert_and_compare(block, x) <= REL_TOL
    assert isinstance(block.branch_reparam, nn.Conv2d)
    assert block.branch_reparam.bias is not None
    assert sorted(k.split('.')[0] for k in block.state_dict()) == sorted(
        ['branch_reparam'] * 2 + (['se'] * 4 if se else []))


def test_syncbn_block_converts_on_cpu_without_process_group():
    assert not torch.distributed.is_initialized()
    block = RepVGGBlock(8, 8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(block.branch_3x3.norm, nn.SyncBatchNorm)
    # SyncBN cannot run a train-mode pass without a process group: randomise
    # the statistics directly.
    randomize_norm_stats_(block)
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        assert relative_errors(ref, block(x))[0][1] <= REL_TOL


def test_identity_branch_only_when_shape_is_kept():
    assert RepVGGBlock(8, 8).branch_norm is not None
    assert RepVGGBlock(8, 8, stride=2).branch_norm is None
    assert RepVGGBlock(8, 16).branch_norm is None


def test_dilation_applies_to_training_form_too():
    block = RepVGGBlock(8, 8, dilation=4)
    conv = block.branch_3x3.conv
    assert (conv.dilation, conv.padding) == ((4, 4), (4, 4))
    block.switch_to_deploy()
    fused = block.branch_reparam
    assert (fused.dilation, fused.padding) == ((4, 4), (4, 4))


def test_switch_to_deploy_is_idempotent_and_leaves_no_stale_parameters():
    block = RepVGGBlock(8, 8, se_ratio=4)
    randomize_norm_stats_(block)
    block.switch_to_deploy()
    keys = set(block.state_dict())
    assert keys == {'branch_reparam.weight', 'branch_reparam.bias',
                    'se.reduce.weight', 'se.reduce.bias', 'se.expand.weight',
                    'se.expand.bias'}
    weight = block.branch_reparam.weight.clone()
    block.switch_to_deploy()
    assert torch.equal(block.branch_reparam.weight, weight)
    assert set(block.state_dict()) == keys
    for name in ('branch_3x3', 'branch_1x1', 'branch_norm'):
        assert getattr(block, name) is None  # None: for TorchScript
    # 8*8*9 + 8 fused conv, SE 8->2->8 with biases
    assert sum(p.numel() for p in block.parameters()) == 584 + 18 + 24


def test_with_cp_gives_same_output_and_gradients():
    torch.manual_seed(1)
    a = RepVGGBlock(8, 8)
    b = RepVGGBlock(8, 8, with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    a(x).sum().backward()
    ga = x.grad.clone()
    x.grad = None
    b(x).sum().backward()
    assert torch.allclose(ga, x.grad, atol=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5)


def test_se_pools_globally_on_non_square_inputs():
    block = RepVGGBlock(8, 8, se_ratio=2).eval()
    se = block.se
    x = torch.randn(1, 8, 3, 12)
    expected = x * torch.sigmoid(
        se.expand(torch.relu(se.reduce(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(se(x), expected, atol=1e-6)
    # only the global mean of each channel matters: permuting pixels keeps it
    perm = x.flatten(2)[:, :, torch.randperm(36)].reshape_as(x)
    gate = se(x) / x
    assert torch.allclose(se(perm) / perm, gate, atol=1e-5)


def test_equivalent_kernel_bias_is_differentiable():
    block = RepVGGBlock(8, 8)
    kernel, bias = block.get_equivalent_kernel_bias()
    kernel.square().sum().backward()
    assert block.branch_3x3.conv.weight.grad.abs().sum() > 0
    assert block.branch_1x1.conv.weight.grad.abs().sum() > 0
    assert block.branch_norm.weight.grad.abs().sum() > 0


def test_training_state_dict_fuses_into_deploy_block():
    train = RepVGGBlock(8, 8, groups=2)
    x = torch.randn(2, 8, 7, 7)
    randomize_norm_stats_(train, x)
    deploy = RepVGGBlock(8, 8, groups=2, deploy=True)
    deploy.load_state_dict(train.state_dict())  # strict
    with torch.no_grad():
        assert relative_errors(train(x), deploy(x))[0][1] <= REL_TOL


def test_deploy_state_dict_into_training_block_fails_clearly():
    deploy = RepVGGBlock(8, 8, deploy=True)
    with pytest.raises(RuntimeError, match='deploy-form .* cannot be split'):
        RepVGGBlock(8, 8).load_state_dict(deploy.state_dict(), strict=False)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match='groups=3 does not divide'):
        RepVGGBlock(8, 8, groups=3)
