"""QARepVGGBlock: structure, exact fusion, state dicts, tools and recipes."""
import contextlib
import copy
import io
import os
import os.path as osp
import runpy
import uuid

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import REL_TOL, ROOT
from mmengine.config import Config
from mmengine.registry import DATASETS, MODELS
from mmengine.runner import Runner
from torch.utils.data import Dataset

from harness.fusion_check import conversion_errors, randomize_norm_stats_
from repvgg_mm import (ARCH_SETTINGS, QARepVGGBlock, RepVGGBlock, RepVGGMM,
                       count_repvgg_blocks, switch_to_deploy)
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.fusion import (NormStats, fuse_conv_bias_norm,
                              qarepvgg_kernel_bias)
from repvgg_mm.io.checkpoint import CheckpointError, load_checkpoint_file
from repvgg_mm.io.weights import load_state_dict_strict, repvgg_form
from repvgg_mm.models.arch import layer_groups, parse_arch, stage_widths
from repvgg_mm.utils.verify import forward_tensor, relative_errors

ALL_ARCHS = sorted(ARCH_SETTINGS)
QA = dict(type='QARepVGGBlock')
TINY = dict(num_blocks=[2, 2, 1, 1], width_factor=[0.125] * 4, groups=2)


# ----------------------------------------------------------------------
# the block
def test_block_structure_and_keys():
    block = QARepVGGBlock(8, 8)
    assert isinstance(block, RepVGGBlock)
    assert isinstance(block.branch_1x1, nn.Conv2d)
    assert block.branch_1x1.bias is None
    assert isinstance(block.post_norm, nn.BatchNorm2d)
    assert block.has_identity
    assert block.branch_norm is None  # the identity carries no BN
    assert sorted(block.state_dict()) == sorted(
        ['branch_3x3.conv.weight', 'branch_1x1.weight'] + [
            f'{p}.{k}' for p in ('branch_3x3.norm', 'post_norm')
            for k in ('weight', 'bias', 'running_mean', 'running_var',
                      'num_batches_tracked')
        ])
    assert not QARepVGGBlock(8, 8, stride=2).has_identity
    assert not QARepVGGBlock(8, 16).has_identity


@pytest.mark.parametrize('training', [True, False])
def test_forward_is_the_papers_block(training):
    """act(BN_post(BN(conv3x3(x)) + conv1x1(x) + x)), written out."""
    block = QARepVGGBlock(6, 6, dilation=2)
    randomize_norm_stats_(block)
    reference = copy.deepcopy(block)
    block.train(training)
    reference.train(training)
    x = torch.randn(3, 6, 9, 7)
    b3 = reference.branch_3x3
    with torch.no_grad():
        bn3 = b3.norm(F.conv2d(x, b3.conv.weight, padding=2, dilation=2))
        summed = bn3 + F.conv2d(x, reference.branch_1x1.weight) + x
        expected = torch.relu(reference.post_norm(summed))
        out = block(x)
    assert relative_errors(expected, out)[0][1] <= 1e-6


def test_syncbn_block_converts_on_cpu_without_process_group():
    assert not torch.distributed.is_initialized()
    block = QARepVGGBlock(8, 8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(block.post_norm, nn.SyncBatchNorm)
    assert isinstance(block.branch_3x3.norm, nn.SyncBatchNorm)
    randomize_norm_stats_(block)  # no train-mode pass without a group
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        assert relative_errors(ref, block(x))[0][1] <= REL_TOL


def test_switch_to_deploy_is_idempotent_and_with_cp_trains():
    block = QARepVGGBlock(8, 8, with_cp=True)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    block(x).sum().backward()
    assert block.branch_1x1.weight.grad is not None
    block.eval().switch_to_deploy()
    kernel = block.branch_reparam.weight.clone()
    block.switch_to_deploy()
    assert torch.equal(kernel, block.branch_reparam.weight)


# ----------------------------------------------------------------------
# the fusion maths
def test_fuse_conv_bias_norm_matches_conv_then_bn():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    norm = nn.BatchNorm2d(6, eps=1e-3)
    randomize_norm_stats_(norm)
    x = torch.randn(2, 4, 7, 5)
    kernel, bias = fuse_conv_bias_norm(conv.weight, conv.bias,
                                       NormStats.from_module(norm))
    with torch.no_grad():
        ref = norm(conv(x))
        out = F.conv2d(x, kernel, bias, padding=1)
    assert relative_errors(ref, out)[0][1] <= 1e-6


def test_fusion_is_differentiable():
    block = QARepVGGBlock(8, 8, groups=2)
    kernel, bias = block.get_equivalent_kernel_bias()
    (kernel.square().sum() + bias.sum()).backward()
    for param in (block.branch_3x3.conv.weight, block.branch_1x1.weight,
                  block.branch_3x3.norm.weight, block.post_norm.weight,
                  block.post_norm.bias):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_fusion_rejects_wrong_kernels():
    stats = NormStats(torch.zeros(4), torch.ones(4), None, None, 1e-5)
    k3, k1 = torch.randn(4, 4, 3, 3), torch.randn(4, 4, 1, 1)
    with pytest.raises(ValueError, match='expected a 1x1 kernel'):
        qarepvgg_kernel_bias(k3, stats, k3, False, stats)
    with pytest.raises(ValueError, match='needs in_channels == out_channels'):
        qarepvgg_kernel_bias(torch.randn(4, 2, 3, 3), stats,
                             torch.randn(4, 2, 1, 1), True, stats)
    kernel, _ = qarepvgg_kernel_bias(k3, stats, k1, True, stats)
    assert kernel.shape == (4, 4, 3, 3)


# ----------------------------------------------------------------------
# the backbone, every architecture
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_conversion_is_exact_for_every_architecture(arch):
    model = RepVGGMM(arch, out_indices=(0, 1, 2, 3), block_cfg=QA)
    assert all(isinstance(b, QARepVGGBlock) for b in model.blocks())
    errors = conversion_errors(model, torch.randn(2, 3, 64, 48), seed=1)
    assert len(errors) == 4
    worst = max(rel for _, rel in errors)
    print(f'qarepvgg-{arch}: worst relative error {worst:.2e}')
    assert worst <= REL_TOL


@pytest.mark.parametrize('variant', ['d8', 'fast'])
def test_conversion_is_exact_for_dilated_variants(variant):
    kwargs = (dict(dilations=(1, 1, 2, 4)) if variant == 'd8' else
              dict(layer_dilations=(None, None, [2], [4])))
    model = RepVGGMM(TINY, out_indices=(2, 3), strides=(2, 2, 1, 1),
                     block_cfg=QA, **kwargs)
    if variant == 'fast':
        assert [b.dilation for b in model.stage_3] == [2]
    errors = conversion_errors(model, torch.randn(2, 3, 40, 56))
    assert max(rel for _, rel in errors) <= REL_TOL


def test_syncbn_backbone_converts_on_cpu_without_process_group():
    model = RepVGGMM(TINY, norm_cfg=dict(type='SyncBN'), block_cfg=QA)
    assert isinstance(model.stem.post_norm, nn.SyncBatchNorm)
    errors = conversion_errors(model, torch.randn(2, 3, 32, 32),
                               calibrate=False)
    assert max(rel for _, rel in errors) <= REL_TOL


def _block_shapes(arch):
    """(in, out, stride, groups) of every block, stem first."""
    arch = parse_arch(arch)
    stem, widths = stage_widths(arch)
    shapes, channels, layer = [(3, stem, 2, 1)], stem, 1
    for width, blocks in zip(widths, arch['num_blocks']):
        for j in range(blocks):
            shapes.append((channels, width, 2 if j == 0 else 1,
                           layer_groups(arch, layer)))
            channels, layer = width, layer + 1
    return shapes, arch['se_ratio']


def expected_params(arch, deploy, block='qa'):
    """Parameter count derived from the block definitions.

    Per block with C_in -> C_out channels and g groups (k = C_in / g):
    training QARepVGG 9kC_out (3x3) + 2C_out (BN) + kC_out (1x1) + 2C_out
    (post-sum BN); RepVGG has the 1x1's BN (2C_out) in place of the
    post-sum BN, plus an identity BN (2C_in) where the block has an
    identity; the deploy form of both is 9kC_out + C_out. SE:
    2 C_out h + h + C_out with h = C_out // 16.
    """
    shapes, se = _block_shapes(arch)
    total = 0
    for cin, cout, stride, groups in shapes:
        k = cin // groups
        if deploy:
            total += 9 * k * cout + cout
        else:
            total += 10 * k * cout + 4 * cout
            if block == 'repvgg' and cin == cout and stride == 1:
                total += 2 * cin
        if se:
            hidden = cout // se
            total += 2 * cout * hidden + hidden + cout
    return total


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_parameter_counts(arch):
    with torch.device('meta'):  # shapes only: nothing allocated
        counts = {(block, deploy): _count(RepVGGMM(
            arch, deploy=deploy,
            block_cfg=QA if block == 'qa' else dict(type='RepVGGBlock')))
            for block in ('qa', 'repvgg') for deploy in (False, True)}
    for (block, deploy), count in counts.items():
        assert count == expected_params(arch, deploy, block)
    # one deploy form for both blocks; QARepVGG trains with fewer BNs
    assert counts['qa', True] == counts['repvgg', True]
    assert counts['qa', False] < counts['repvgg', False]


def test_a0_parameter_counts_worked_out():
    # training: 1,632 (stem 3->48) + 46,464 + 324,096 + 4,987,392 +
    # 2,462,720 (stages) = 7,822,304; deploy: 7,028,384, i.e. 8.31 M with
    # the 1280 -> 1000 classifier (the RepVGG paper lists 8.30 M for A0).
    assert expected_params('a0', deploy=False) == 7_822_304
    assert expected_params('a0', deploy=True) == 7_028_384
    with torch.device('meta'):
        assert _count(RepVGGMM('a0', block_cfg=QA)) == 7_822_304


@MODELS.register_module(force=True)
class NotARepVGGBlock(nn.Conv2d):
    def __init__(self, in_channels, out_channels, stride=1, groups=1,
                 **kwargs):
        super().__init__(in_channels, out_channels, 3, stride, 1,
                         groups=groups)


def test_block_cfg_errors():
    with pytest.raises(ValueError, match='must not set'):
        RepVGGMM(TINY, block_cfg=dict(type='QARepVGGBlock', deploy=True))
    with pytest.raises(ValueError, match='with a "type"'):
        RepVGGMM(TINY, block_cfg=dict(se_ratio=4))
    with pytest.raises(TypeError, match='not a RepVGGBlock subclass'):
        RepVGGMM(TINY, block_cfg=dict(type='NotARepVGGBlock'))
    with pytest.raises(KeyError, match='NoSuchBlock'):
        RepVGGMM(TINY, block_cfg=dict(type='NoSuchBlock'))


# ----------------------------------------------------------------------
# state dicts across forms
def _trained_qa(seed=0):
    torch.manual_seed(seed)
    model = RepVGGMM(TINY, block_cfg=QA)
    randomize_norm_stats_(model, torch.randn(2, 3, 32, 32), seed=seed)
    return model


def test_training_state_dict_fuses_on_load_into_deploy_model():
    model = _trained_qa()
    deployed = RepVGGMM(TINY, block_cfg=QA, deploy=True)
    load_state_dict_strict(deployed, model.state_dict(), 'qa.pth')
    assert count_repvgg_blocks(deployed, deployed=True) == 7
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        errors = relative_errors(model(x), deployed.eval()(x))
    assert max(rel for _, rel in errors) <= REL_TOL
    # same weights as fusing the module in place
    fused = switch_to_deploy(model)
    for key, value in fused.state_dict().items():
        assert torch.allclose(value, deployed.state_dict()[key], atol=1e-6)


def test_deploy_state_dict_into_training_model_raises():
    deploy_sd = switch_to_deploy(_trained_qa()).state_dict()
    with pytest.raises(CheckpointError,
                       match='cannot be split back into branches'):
        load_state_dict_strict(RepVGGMM(TINY, block_cfg=QA), deploy_sd,
                               'deploy.pth')


def test_block_type_mismatch_is_named():
    qa_sd = _trained_qa().state_dict()
    repvgg_sd = RepVGGMM(TINY).state_dict()
    with pytest.raises(CheckpointError,
                       match='block_cfg=dict\\(type="QARepVGGBlock"\\)'):
        load_state_dict_strict(RepVGGMM(TINY, deploy=True), qa_sd, 'qa.pth')
    with pytest.raises(CheckpointError, match='those of a RepVGGBlock'):
        load_state_dict_strict(RepVGGMM(TINY, block_cfg=QA, deploy=True),
                               repvgg_sd, 'rep.pth')
    with pytest.raises(CheckpointError, match='missing keys'):
        load_state_dict_strict(RepVGGMM(TINY), qa_sd, 'qa.pth')


def test_form_detection_recognises_qarepvgg_keys():
    model = _trained_qa()
    assert repvgg_form(model.state_dict()) == 'training'
    assert repvgg_form(switch_to_deploy(model).state_dict()) == 'deploy'


# ----------------------------------------------------------------------
# tools, hook, optimizer, benchmark
CLS_CFG = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepVGGMM', arch={TINY!r},
                  block_cfg=dict(type='QARepVGGBlock')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
"""


@pytest.fixture
def qa_config(tmp_path):
    path = tmp_path / 'qa_cls.py'
    path.write_text(CLS_CFG)
    return str(path)


def test_convert_deploy_tool(qa_config, tmp_path):
    cfg = Config.fromfile(qa_config)
    torch.manual_seed(0)
    model = build_model(cfg)
    randomize_norm_stats_(model, seed=3)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), ckpt)
    out = tmp_path / 'out' / 'deploy.pth'
    tool = runpy.run_path(osp.join(ROOT, 'tools', 'convert_deploy.py'))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as ex:
        tool['run_tool'](tool['main'],
                         [qa_config, str(ckpt), str(out), '--verify',
                          '--shape', '32', '32'])
    assert ex.value.code in (0, None), stdout.getvalue()
    assert 'verify: OK' in stdout.getvalue()
    deploy_cfg = Config.fromfile(str(out.with_suffix('.py')))
    assert deploy_cfg.model.backbone.deploy is True
    assert deploy_cfg.model.backbone.block_cfg == QA
    deployed = build_model(deploy_cfg).eval()
    deployed.load_state_dict(load_checkpoint_file(str(out))['state_dict'])
    x = torch.randn(2, 3, 32, 32)
    errors = relative_errors(forward_tensor(model.eval(), x),
                             forward_tensor(deployed, x))
    assert max(rel for _, rel in errors) <= REL_TOL


@DATASETS.register_module(force=True)
class QATinyImages(Dataset):
    """8 fixed random 3x24x24 images, 3 classes."""

    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, seed=0):
        from mmpretrain.structures import DataSample
        gen = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (8, 3, 24, 24), generator=gen,
                               dtype=torch.uint8)
        labels = torch.randint(0, 3, (8, ), generator=gen)
        self.items = [dict(inputs=i, data_samples=DataSample().set_gt_label(
            label)) for i, label in zip(images, labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_switch_to_deploy_hook_writes_a_deploy_checkpoint(qa_config,
                                                          tmp_path):
    cfg = Config.fromfile(qa_config)
    loader = dict(batch_size=4, num_workers=0,
                  dataset=dict(type='QATinyImages'),
                  sampler=dict(type='DefaultSampler', shuffle=False))
    cfg.merge_from_dict(dict(
        work_dir=str(tmp_path), log_level='WARNING',
        experiment_name=f'qa_{uuid.uuid4().hex[:8]}',
        model=dict(data_preprocessor=dict(type='ClsDataPreprocessor',
                                          mean=[127.5] * 3, std=[64.0] * 3)),
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=dict(type='Accuracy', topk=(1, )), val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01,
                                          momentum=0.9, weight_decay=1e-4)),
        custom_hooks=[dict(type='SwitchToDeployHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=1))))
    runner = Runner.from_cfg(cfg)
    runner.train()
    deploy_ckpt = tmp_path / 'epoch_1_deploy.pth'
    assert {'epoch_1.pth', 'epoch_1_deploy.pth',
            'qa_cls_deploy.py'} <= set(os.listdir(tmp_path))
    deploy_cfg = Config.fromfile(str(tmp_path / 'qa_cls_deploy.py'))
    deployed = build_model(deploy_cfg).eval()
    deployed.load_state_dict(
        load_checkpoint_file(str(deploy_ckpt))['state_dict'])
    trained = build_model(cfg).eval()
    trained.load_state_dict(
        load_checkpoint_file(str(tmp_path / 'epoch_1.pth'))['state_dict'])
    x = torch.randn(2, 3, 24, 24)
    errors = relative_errors(forward_tensor(trained, x),
                             forward_tensor(deployed, x))
    assert max(rel for _, rel in errors) <= REL_TOL


def test_custom_l2_refuses_qarepvgg():
    from repvgg_mm.engine.optim.custom_l2 import CustomL2Penalty
    with pytest.raises(ValueError, match='plain weight decay'):
        CustomL2Penalty(RepVGGMM(TINY, block_cfg=QA), 1e-4)


def test_benchmark_deployed_form_is_exact(qa_config):
    from harness.benchmark.forms import deployed_form
    from harness.benchmark.sources import build_source
    bench = build_source(qa_config)
    x = torch.randn(2, 3, 32, 32)
    randomize_norm_stats_(bench.model, x)
    deployed = deployed_form(bench, x)
    assert deployed.steps.startswith('7 RepVGG blocks re-parameterized')
    assert count_repvgg_blocks(deployed.model, deployed=True) == 7
    assert deployed.max_rel_err <= REL_TOL


# ----------------------------------------------------------------------
# recipes
RECIPES = [('qarepvgg-a0_8xb32_in1k', 'a0', 1280),
           ('qarepvgg-b0_8xb32_in1k', 'b0', 1280),
           ('qarepvgg-b1g2_8xb32_in1k', 'b1g2', 2048)]


def _model_of(cfg):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('name,arch,width', RECIPES)
def test_imagenet_recipes_build_through_mmpretrain(name, arch, width):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    deploy_cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'deploy', f'{name}_deploy.py'))
    assert cfg.model.backbone.block_cfg == QA
    assert 'constructor' not in cfg.optim_wrapper  # no custom L2
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.train_cfg.max_epochs == 120
    with torch.device('meta'):
        model, deployed = _model_of(cfg), _model_of(deploy_cfg)
    assert model.head.fc.in_features == width
    assert model.backbone.arch == parse_arch(arch)
    blocks = model.backbone.blocks()
    assert len(blocks) == sum(parse_arch(arch)['num_blocks']) + 1
    assert all(type(b) is QARepVGGBlock and not b.deploy for b in blocks)
    assert all(type(b) is QARepVGGBlock and b.deploy
               for b in deployed.backbone.blocks())
    assert _count(deployed.backbone) == expected_params(arch, deploy=True)


def test_qarepvgg_weight_decay_is_plain():
    """Every conv and linear kernel decays at 1e-4; BNs and biases not."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(ROOT, 'configs',
                                   'qarepvgg-a0_8xb32_in1k.py'))
    cfg.model.backbone.arch = TINY
    cfg.model.head.in_channels = 64
    model = _model_of(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.param_groups
             for p in g['params']}
    for name, param in model.named_parameters():
        is_kernel = name.endswith('weight') and param.dim() > 1
        assert decay[id(param)] == (1e-4 if is_kernel else 0.0), name
    assert any(n.endswith('branch_1x1.weight')
               for n, _ in model.named_parameters())


def test_digits_demo_variant_differs_only_in_the_block():
    rep = Config.fromfile(osp.join(ROOT, 'configs/demo/repvgg-tiny_digits.py'))
    qa = Config.fromfile(
        osp.join(ROOT, 'configs/demo/qarepvgg-tiny_digits.py'))
    assert qa.model.backbone.pop('block_cfg') == QA
    assert qa.to_dict() == rep.to_dict()
    deploy = Config.fromfile(
        osp.join(ROOT, 'configs/demo/qarepvgg-tiny_digits_deploy.py'))
    model = _model_of(deploy)
    assert count_repvgg_blocks(model, deployed=True) == 8
    assert all(type(b) is QARepVGGBlock for b in model.backbone.blocks())
