"""The ImageNet configs: they parse, agree with the architectures, follow the
recipes of the paper (Sec. 4.1, Tables 4-5), and build through the
mmpretrain registry."""
import os.path as osp

import pytest
import torch
from conftest import REL_TOL, ROOT
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm.models.arch import parse_arch, stage_widths
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.verify import relative_errors

ARCHS = ('a0', 'a1', 'a2', 'b0', 'b1', 'b1g2', 'b1g4', 'b2', 'b2g4', 'b3',
         'b3g4', 'd2se')
LONG_RECIPE = ('b2g4', 'b3', 'b3g4', 'd2se')  # 200 epochs
# width of the last stage = head input (paper Table 2)
HEAD_WIDTH = dict(a0=1280, a1=1280, a2=1408, b0=1280, b1=2048, b1g2=2048,
                  b1g4=2048, b2=2560, b2g4=2560, b3=2560, b3g4=2560,
                  d2se=2560)


def train_config(arch):
    return osp.join(ROOT, 'configs', f'repvgg-{arch}_8xb32_in1k.py')


def deploy_config(arch):
    return osp.join(ROOT, 'configs', 'deploy',
                    f'repvgg-{arch}_8xb32_in1k_deploy.py')


def build_model(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(cfg.model, data_preprocessor=cfg.data_preprocessor))


def test_every_arch_has_a_train_and_a_deploy_config():
    import glob
    found = sorted(osp.basename(p) for p in glob.glob(
        osp.join(ROOT, 'configs', 'repvgg-*_8xb32_in1k.py')))
    assert found == sorted(osp.basename(train_config(a)) for a in ARCHS)
    found = sorted(osp.basename(p) for p in glob.glob(
        osp.join(ROOT, 'configs', 'deploy', 'repvgg-*_deploy.py')))
    assert found == sorted(osp.basename(deploy_config(a)) for a in ARCHS)


@pytest.mark.parametrize('arch', ARCHS)
def test_config_matches_arch_and_recipe(arch):
    cfg = load_config(train_config(arch))  # the tools' loader
    model = cfg.model
    assert model.type == 'ImageClassifier'
    assert model.backbone.type == 'RepVGGMM' and model.backbone.arch == arch
    assert model.neck.type == 'GlobalAveragePooling'
    assert model.head.type == 'LinearClsHead'
    assert model.head.num_classes == 1000
    widths = stage_widths(parse_arch(model.backbone.arch))[1]
    assert model.head.in_channels == widths[-1] == HEAD_WIDTH[arch]

    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports.imports == ['repvgg_mm']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'ImageNet'
        assert cfg[loader].dataset.data_root == 'data/imagenet'
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.auto_scale_lr.base_batch_size == 256 == 8 * 32
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.1, 0.9, 1e-4)

    train_steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    test_steps = cfg.test_dataloader.dataset.pipeline
    crop = 320 if arch == 'd2se' else 224
    assert test_steps[2].crop_size == crop
    assert test_steps[1].scale == (320 if arch == 'd2se' else 256)
    assert cfg.val_dataloader.dataset.pipeline == test_steps
    if arch in LONG_RECIPE:
        assert cfg.train_cfg.max_epochs == 200
        warmup, cosine = cfg.param_scheduler
        assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 5)
        assert (cosine.type, cosine.begin, cosine.end) == (
            'CosineAnnealingLR', 5, 200)
        assert train_steps == ['LoadImageFromFile', 'RandomResizedCrop',
                               'RandomFlip', 'AutoAugment', 'PackInputs']
        assert model.head.loss.type == 'LabelSmoothLoss'
        assert model.head.loss.label_smooth_val == 0.1
        assert model.train_cfg.augments.type == 'Mixup'
    else:
        assert cfg.train_cfg.max_epochs == 120
        assert cfg.param_scheduler.type == 'CosineAnnealingLR'
        assert cfg.param_scheduler.T_max == 120
        assert train_steps == ['LoadImageFromFile', 'RandomResizedCrop',
                               'RandomFlip', 'PackInputs']
        assert model.head.loss.type == 'CrossEntropyLoss'
        assert 'train_cfg' not in model


@pytest.mark.parametrize('arch', ARCHS)
def test_deploy_config_is_the_train_config_with_deploy_true(arch):
    train = Config.fromfile(train_config(arch)).to_dict()
    deploy = Config.fromfile(deploy_config(arch)).to_dict()
    assert deploy['model']['backbone'].pop('deploy') is True
    assert deploy == train


def test_a0_models_build_with_the_published_sizes():
    """mmpretrain 1.2.0 counts: A0 has 9.11 M params in training form,
    8.31 M deployed."""
    sizes = {}
    for name, path in (('train', train_config('a0')),
                       ('deploy', deploy_config('a0'))):
        model = build_model(Config.fromfile(path))
        sizes[name] = round(sum(p.numel() for p in model.parameters()) / 1e6,
                            2)
    assert sizes == dict(train=9.11, deploy=8.31)


def test_b1g4_deploy_model_size():
    """Paper Table 4: B1g4 deployed, 36.13 M params (grouped layers)."""
    model = build_model(Config.fromfile(deploy_config('b1g4')))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 36.13


def test_deploy_config_loads_a_training_checkpoint_to_the_same_function():
    cfg = Config.fromfile(train_config('a0'))
    train_model = build_model(cfg)
    x = torch.randn(2, 3, 64, 64)
    randomize_norm_stats_(train_model, inputs=x, seed=0)
    deploy_model = build_model(Config.fromfile(deploy_config('a0'))).eval()
    deploy_model.load_state_dict(train_model.state_dict(), strict=True)
    assert not any('branch_3x3' in k for k in deploy_model.state_dict())
    with torch.no_grad():
        ref = train_model(x, mode='tensor')
        out = deploy_model(x, mode='tensor')
    (abs_err, rel_err), = relative_errors(ref, out)
    assert rel_err < REL_TOL, (abs_err, rel_err)


def test_200e_model_trains_with_mixup_and_label_smoothing():
    from mmpretrain.structures import DataSample
    cfg = Config.fromfile(train_config('b3'))
    cfg.model.backbone.arch = dict(num_blocks=[1, 1, 1, 1],
                                   width_factor=[0.125, 0.125, 0.125, 0.125])
    cfg.model.head.in_channels = 64
    model = build_model(cfg)
    assert type(model.head.loss_module).__name__ == 'LabelSmoothLoss'
    labels = [3, 7, 11, 900]
    data = dict(
        inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
                for _ in labels],
        data_samples=[DataSample().set_gt_label(i) for i in labels])
    torch.manual_seed(1)
    batch = model.data_preprocessor(data, training=True)
    scores = torch.stack([s.gt_score for s in batch['data_samples']])
    assert scores.shape == (4, 1000)
    assert torch.allclose(scores.sum(1), torch.ones(4))
    mixed = (scores > 0).sum(1)
    assert mixed.max() == 2  # mixup blends two labels
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0
