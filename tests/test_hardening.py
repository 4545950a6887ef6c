"""Issue 13: nothing lost, nothing misleading.

Gradient checkpointing, TorchScript, hostile checkpoints, interrupted
writes, output paths, permissions, resume with augmentation, CPU bf16.
"""
import copy

import pytest
import torch

from repvgg_mm.models import RepVGGBlock, RepVGGMM

TINY_ARCH = dict(num_blocks=[1, 1, 1, 1], width_factor=[0.125] * 4)


# ---------------------------------------------------------------- with_cp
@pytest.mark.parametrize('se_ratio', [None, 4])
def test_with_cp_updates_norm_statistics_once(se_ratio):
    torch.manual_seed(0)
    plain = RepVGGBlock(8, 8, se_ratio=se_ratio).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    losses = []
    for block in (plain, checkpointed):
        loss = block(x).square().sum()
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == losses[1]
    ref, got = plain.state_dict(), checkpointed.state_dict()
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    assert int(got['branch_3x3.norm.num_batches_tracked']) == 1
    for (name, p), q in zip(plain.named_parameters(),
                            checkpointed.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_with_cp_backbone_matches_plain_backbone():
    torch.manual_seed(0)
    plain = RepVGGMM(arch=TINY_ARCH).train()
    checkpointed = RepVGGMM(arch=TINY_ARCH, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    for model in (plain, checkpointed):
        model(x)[0].sum().backward()
    ref, got = plain.state_dict(), checkpointed.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert all(torch.equal(p.grad, q.grad) for p, q in
               zip(plain.parameters(), checkpointed.parameters()))


# ------------------------------------------------------------ TorchScript
@pytest.mark.parametrize('arch', [TINY_ARCH, 'd2se'])
@pytest.mark.parametrize('deploy', [False, True])
def test_script_and_trace_both_forms(arch, deploy):
    torch.manual_seed(0)
    model = RepVGGMM(arch=arch, out_indices=(1, 3)).eval()
    if deploy:
        model.switch_to_deploy()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.script(model)(x)
        traced = torch.jit.trace(model, x)(x)
    assert len(scripted) == len(traced) == len(expected) == 2
    for want, a, b in zip(expected, scripted, traced):
        assert torch.equal(a, want)
        assert torch.equal(b, want)
