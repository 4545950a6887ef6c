"""Weight decay of the RepVGG recipe and the custom L2, built by mmengine.

The optimizers are built the way the Runner builds them
(``mmengine.optim.build_optim_wrapper`` on the config's ``optim_wrapper``)
for real ImageClassifier models from the real configs, with a tiny arch.
"""
import os.path as osp

import pytest
import torch
from conftest import ROOT
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import RepVGGBlock
from repvgg_mm.engine.optim import (CustomL2AmpOptimWrapper,
                                    CustomL2OptimWrapper,
                                    RepVGGCustomL2Constructor, block_custom_l2)

WD = 1e-4
CONFIGS = osp.join(ROOT, 'configs')
# stem, 2 + 2 + 1 + 1 blocks; the second blocks of stages 1 and 2 have an
# identity branch
TINY = dict(num_blocks=[2, 2, 1, 1], width_factor=[0.125, 0.125, 0.125, 0.25])


def build(config='repvgg-a0_8xb32_in1k.py', arch=None, custom_l2=False,
          deploy=False, wrapper_type=None):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    cfg.model.backbone.arch = dict(arch or TINY)
    cfg.model.backbone.deploy = deploy
    cfg.model.head.in_channels = 128
    cfg.model.head.num_classes = 10
    if custom_l2:
        cfg.optim_wrapper.constructor = 'RepVGGCustomL2Constructor'
    if wrapper_type:
        cfg.optim_wrapper.type = wrapper_type
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, wrapper


def decay_of(model, wrapper):
    """parameter name -> weight decay of its group (every param once)."""
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {}
    for group in wrapper.optimizer.param_groups:
        assert group['lr'] == 0.1 and group['momentum'] == 0.9
        for param in group['params']:
            name = names[id(param)]
            assert name not in decay
            decay[name] = group['weight_decay']
    assert sorted(decay) == sorted(names.values())
    return decay


def decayed(decay):
    assert set(decay.values()) <= {0.0, WD}, set(decay.values())
    return sorted(n for n, wd in decay.items() if wd == WD)


def expected_decayed(model, kernels=True):
    """Paper Sec. 4.1: kernels, the identity BN gamma and the fc weight."""
    suffixes = ['branch_norm.weight', 'se.reduce.weight', 'se.expand.weight',
                'branch_reparam.weight', 'head.fc.weight']
    if kernels:
        suffixes += ['branch_3x3.conv.weight', 'branch_1x1.conv.weight']
    return sorted(n for n, _ in model.named_parameters()
                  if n.endswith(tuple(suffixes)))


@pytest.mark.parametrize('config', ['repvgg-a0_8xb32_in1k.py',
                                    'repvgg-b3_8xb32_in1k.py'])
def test_weight_decay_exceptions(config):
    model, wrapper = build(config)
    decay = decay_of(model, wrapper)
    on = decayed(decay)
    assert on == expected_decayed(model)
    # 7 blocks x 2 kernels + 2 identity gammas + fc weight
    assert len(on) == 17
    # 7 x (gamma, beta) x 2 branch BNs + 2 identity betas + fc bias
    assert len(decay) - len(on) == 31
    for name in ('backbone.stage_1.1.branch_norm.weight',
                 'backbone.stem.branch_3x3.conv.weight', 'head.fc.weight'):
        assert decay[name] == WD
    for name in ('backbone.stage_1.1.branch_norm.bias',
                 'backbone.stage_1.1.branch_3x3.norm.weight',
                 'backbone.stage_1.1.branch_1x1.norm.weight',
                 'backbone.stage_1.1.branch_3x3.norm.bias',
                 'head.fc.bias'):
        assert decay[name] == 0.0


def test_weight_decay_with_se_and_deploy_form():
    model, wrapper = build(arch=dict(TINY, se_ratio=4))
    decay = decay_of(model, wrapper)
    assert decayed(decay) == expected_decayed(model)
    assert decay['backbone.stem.se.reduce.weight'] == WD
    assert decay['backbone.stem.se.reduce.bias'] == 0.0

    model, wrapper = build(deploy=True)
    decay = decay_of(model, wrapper)
    assert decayed(decay) == expected_decayed(model)
    assert len(decayed(decay)) == 7 + 1  # fused kernels + fc weight
    assert decay['backbone.stage_1.1.branch_reparam.bias'] == 0.0


# ----------------------------------------------------------------------
# custom L2 (paper Sec. 3.3)
def official_custom_l2(block):
    """The formula as the official ``get_custom_L2`` writes it."""
    k3, k1 = block.branch_3x3.conv.weight, block.branch_1x1.conv.weight
    bn3, bn1 = block.branch_3x3.norm, block.branch_1x1.norm
    t3 = (bn3.weight / (bn3.running_var + bn3.eps).sqrt()).reshape(
        -1, 1, 1, 1).detach()
    t1 = (bn1.weight / (bn1.running_var + bn1.eps).sqrt()).reshape(
        -1, 1, 1, 1).detach()
    circle = (k3**2).sum() - (k3[:, :, 1:2, 1:2]**2).sum()
    eq_centre = k3[:, :, 1:2, 1:2] * t3 + k1 * t1
    return circle + (eq_centre**2 / (t3**2 + t1**2)).sum()


def test_block_custom_l2_by_hand():
    block = RepVGGBlock(1, 1)
    with torch.no_grad():
        block.branch_3x3.conv.weight.fill_(1.0)
        block.branch_1x1.conv.weight.fill_(1.0)
        for norm, gamma in ((block.branch_3x3.norm, 1.0),
                            (block.branch_1x1.norm, 2.0)):
            norm.running_var.fill_(1.0 - norm.eps)  # sqrt(var + eps) = 1
            norm.weight.fill_(gamma)
    # ring 8 x 1^2 = 8; centre 1 * 1 + 1 * 2 = 3; 3^2 / (1^2 + 2^2) = 1.8
    assert block_custom_l2(block).item() == pytest.approx(9.8, rel=1e-6)


def test_custom_l2_penalty_matches_the_formula():
    model, wrapper = build(custom_l2=True)
    randomize_norm_stats_(model, seed=3)
    model.train()
    assert type(wrapper) is CustomL2OptimWrapper
    blocks = [m for m in model.modules() if isinstance(m, RepVGGBlock)]
    assert len(wrapper.custom_l2.blocks) == len(blocks) == 7

    penalty = wrapper.custom_l2()
    reference = 0.5 * WD * sum(official_custom_l2(b) for b in blocks)
    assert penalty.item() == pytest.approx(reference.item(), rel=1e-6)
    assert penalty.item() > 0

    kernels = [p for b in blocks for p in (b.branch_3x3.conv.weight,
                                           b.branch_1x1.conv.weight)]
    gammas = [b.branch_3x3.norm.weight for b in blocks]
    grads = torch.autograd.grad(penalty, kernels)
    ref_grads = torch.autograd.grad(reference, kernels)
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-12)
    # the BN scales are constants of the penalty (detached)
    assert all(g is None for g in torch.autograd.grad(
        wrapper.custom_l2(), gammas, allow_unused=True))


def test_custom_l2_replaces_plain_decay_of_exactly_the_branch_kernels():
    model, wrapper = build(custom_l2=True)
    decay = decay_of(model, wrapper)
    assert decayed(decay) == expected_decayed(model, kernels=False)
    assert len(decayed(decay)) == 3  # 2 identity gammas + fc weight
    plain_model, plain_wrapper = build()
    plain = decay_of(plain_model, plain_wrapper)
    changed = sorted(n for n in decay if decay[n] != plain[n])
    assert changed == sorted(
        n for n in decay
        if n.endswith(('branch_3x3.conv.weight', 'branch_1x1.conv.weight')))
    assert len(changed) == 14


def test_custom_l2_update_step():
    """One SGD step on a zero loss moves the kernels by -lr * d(penalty)."""
    model, wrapper = build(custom_l2=True)
    randomize_norm_stats_(model, seed=1)
    model.train()
    blocks = [m for m in model.modules() if isinstance(m, RepVGGBlock)]
    kernels = [p for b in blocks for p in (b.branch_3x3.conv.weight,
                                           b.branch_1x1.conv.weight)]
    reference = 0.5 * WD * sum(official_custom_l2(b) for b in blocks)
    expected = [(k - 0.1 * g).detach() for k, g in zip(
        kernels, torch.autograd.grad(reference, kernels))]
    gamma = blocks[0].branch_3x3.norm.weight.detach().clone()
    identity_gamma = blocks[2].branch_norm.weight.detach().clone()

    zero_loss = sum(p.sum() for p in model.parameters()) * 0.0
    wrapper.update_params(zero_loss)
    for got, want in zip(kernels, expected):
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-9)
    # branch BN gamma: no decay, no penalty gradient -> unchanged
    assert torch.equal(blocks[0].branch_3x3.norm.weight, gamma)
    # identity gamma keeps its plain decay: w - lr * wd * w
    assert torch.allclose(blocks[2].branch_norm.weight,
                          identity_gamma * (1 - 0.1 * WD), rtol=1e-7)


def test_custom_l2_wrapper_types_and_errors():
    from mmengine.optim import AmpOptimWrapper

    # --amp sets optim_wrapper.type='AmpOptimWrapper'; the constructor keeps
    # mixed precision (building an AmpOptimWrapper itself needs a GPU)
    for given, built in (('OptimWrapper', 'CustomL2OptimWrapper'),
                         ('AmpOptimWrapper', 'CustomL2AmpOptimWrapper')):
        constructor = RepVGGCustomL2Constructor(
            dict(type=given, optimizer=dict(type='SGD', lr=0.1,
                                            weight_decay=WD)))
        assert constructor.optim_wrapper_cfg['type'] == built
    assert issubclass(CustomL2AmpOptimWrapper, AmpOptimWrapper)
    with pytest.raises(ValueError, match='needs optim_wrapper.optimizer'):
        RepVGGCustomL2Constructor(
            dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=0)))
    with pytest.raises(ValueError, match='no training-form RepVGG block'):
        build(custom_l2=True, deploy=True)
    with pytest.raises(ValueError, match='supports optim_wrapper.type'):
        build(custom_l2=True, wrapper_type='ApexOptimWrapper')


def test_custom_l2_switch_in_a_config_with_the_recipe_rules():
    """The switch keeps the config's other decay rules (200e recipe too)."""
    model, wrapper = build('repvgg-b3_8xb32_in1k.py', custom_l2=True)
    decay = decay_of(model, wrapper)
    assert decayed(decay) == expected_decayed(model, kernels=False)
