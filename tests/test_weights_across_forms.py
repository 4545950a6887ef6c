"""Loading weights across forms: never silently random (issue 2.8)."""
import pytest
import torch
from conftest import REL_TOL
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import load_checkpoint, load_state_dict

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import RepVGGMM, switch_to_deploy
from repvgg_mm.utils.verify import relative_errors

TINY = dict(num_blocks=[2, 1, 2, 1], width_factor=[0.25, 0.25, 0.25, 0.5],
            groups=2, se_ratio=4)


@pytest.fixture
def trained():
    model = RepVGGMM(TINY, out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, 32, 40)
    randomize_norm_stats_(model, x)
    return model, x


def _max_rel(a, b):
    return max(rel for _, rel in relative_errors(a, b))


def test_train_state_dict_into_deploy_model_is_fused_on_load(trained):
    model, x = trained
    deploy = RepVGGMM(TINY, out_indices=(0, 1, 2, 3), deploy=True).eval()
    result = deploy.load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        assert _max_rel(model(x), deploy(x)) <= REL_TOL


def test_train_checkpoint_through_mmengine_loader(trained, tmp_path):
    """mmengine loads non-strictly: make sure nothing stays random."""
    model, x = trained
    path = tmp_path / 'train.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    deploy = RepVGGMM(TINY, out_indices=(0, 1, 2, 3), deploy=True).eval()
    load_checkpoint(deploy, str(path), map_location='cpu', strict=False)
    with torch.no_grad():
        assert _max_rel(model(x), deploy(x)) <= REL_TOL


def test_pretrained_init_cfg_with_prefix_fuses_into_deploy_backbone(
        trained, tmp_path):
    model, x = trained
    path = tmp_path / 'cls.pth'
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 128)
    torch.save({'state_dict': state}, path)
    deploy = RepVGGMM(
        TINY, out_indices=(0, 1, 2, 3), deploy=True,
        init_cfg=dict(type='Pretrained', checkpoint=str(path),
                      prefix='backbone.'))
    deploy.init_weights()
    deploy.eval()
    with torch.no_grad():
        assert _max_rel(model(x), deploy(x)) <= REL_TOL


def test_deploy_state_dict_into_training_model_fails_even_non_strict(
        trained):
    model, _ = trained
    deploy_sd = switch_to_deploy(model).state_dict()
    fresh = RepVGGMM(TINY, out_indices=(0, 1, 2, 3))
    with pytest.raises(RuntimeError, match='deploy-form'):
        fresh.load_state_dict(deploy_sd, strict=False)
    with pytest.raises(RuntimeError, match='deploy=True'):
        load_state_dict(fresh, deploy_sd, strict=False)


def test_incomplete_training_state_dict_into_deploy_model_fails(trained):
    model, _ = trained
    state = model.state_dict()
    del state['stage_1.0.branch_1x1.conv.weight']
    deploy = RepVGGMM(TINY, out_indices=(0, 1, 2, 3), deploy=True)
    with pytest.raises(RuntimeError, match='missing .*branch_1x1.conv.weight'):
        load_state_dict(deploy, state, strict=False)


def test_switch_to_deploy_copy_leaves_original_and_finds_nested_blocks(
        trained):
    model, x = trained

    class Wrapper(BaseModule):

        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(model)

        def forward(self, x):
            return self.body(x)

    wrapper = Wrapper().eval()
    converted = switch_to_deploy(wrapper)
    assert converted is not wrapper
    assert not model.deploy and all(not b.deploy for b in model.blocks())
    with torch.no_grad():
        assert _max_rel(wrapper(x), converted(x)) <= REL_TOL
    assert switch_to_deploy(wrapper, inplace=True) is wrapper
    assert model.deploy


def test_switch_to_deploy_without_blocks_says_so():
    with pytest.raises(ValueError, match='holds no RepVGG block'):
        switch_to_deploy(torch.nn.Conv2d(3, 3, 3))
