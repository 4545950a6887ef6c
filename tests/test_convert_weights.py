"""Importing official / mmpretrain / timm RepVGG weights (issue 4.4).

Every source model gets random weights and random BN statistics; after the
import, this project's ImageClassifier must give the same logits (1e-5
relative). Layouts of all architectures are compared on the meta device.
"""
import os
import os.path as osp
from collections import OrderedDict

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import REL_TOL, ROOT
from conftest import run_tool as run_conftest_tool
from mmengine.config import Config
from timm.utils.model import reparameterize_model

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import RepVGGMM
from repvgg_mm.apis import import_weights
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.converters.weight_import import (expected_layout,
                                                import_state_dict, rename_key)
from repvgg_mm.errors import OutputError
from repvgg_mm.fusion import NormStats, equivalent_kernel_bias
from repvgg_mm.io.checkpoint import CheckpointError
from repvgg_mm.models.arch import ARCH_SETTINGS, parse_arch, stage_widths
from repvgg_mm.utils.verify import relative_errors

TOOL = osp.join(ROOT, 'tools', 'convert_weights.py')
IMPORT_TOL = 1e-5
#: identity branches, grouped layers (2, 4, 6), SE in every block
TINY = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5),
            groups=2, se_ratio=16)
NUM_CLASSES = 7


# ----------------------------------------------------------------------
# the official RepVGG layout (DingXiaoH/RepVGG repvgg.py), rebuilt from its
# documented structure: stage0 .. stage4, rbr_dense / rbr_1x1 = conv + bn,
# rbr_identity = bn, rbr_reparam, se.down / se.up, gap + linear.
class OfficialSE(nn.Module):

    def __init__(self, channels, hidden):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1, bias=True)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x):  # pools with a kernel of the input's width
        s = F.avg_pool2d(x, kernel_size=x.size(3))
        return x * torch.sigmoid(self.up(F.relu(self.down(s))))


def conv_bn(cin, cout, k, stride, groups):
    return nn.Sequential(
        OrderedDict(conv=nn.Conv2d(cin, cout, k, stride, k // 2,
                                   groups=groups, bias=False),
                    bn=nn.BatchNorm2d(cout)))


class OfficialBlock(nn.Module):

    def __init__(self, cin, cout, stride, groups, use_se, deploy):
        super().__init__()
        self.se = OfficialSE(cout, cout // 16) if use_se else nn.Identity()
        if deploy:
            self.rbr_reparam = nn.Conv2d(cin, cout, 3, stride, 1,
                                         groups=groups, bias=True)
            return
        self.rbr_identity = (nn.BatchNorm2d(cin)
                             if cin == cout and stride == 1 else None)
        self.rbr_dense = conv_bn(cin, cout, 3, stride, groups)
        self.rbr_1x1 = conv_bn(cin, cout, 1, stride, groups)

    def forward(self, x):
        if hasattr(self, 'rbr_reparam'):
            y = self.rbr_reparam(x)
        else:
            y = self.rbr_dense(x) + self.rbr_1x1(x)
            if self.rbr_identity is not None:
                y = y + self.rbr_identity(x)
        return F.relu(self.se(y))


class OfficialRepVGG(nn.Module):

    def __init__(self, arch, num_classes, deploy=False):
        super().__init__()
        stem, widths = stage_widths(arch)
        use_se, groups = bool(arch['se_ratio']), arch['groups']
        self.stage0 = OfficialBlock(3, stem, 2, 1, use_se, deploy)
        cin, layer = stem, 1
        for i, (n, width) in enumerate(zip(arch['num_blocks'], widths)):
            blocks = []
            for j in range(n):
                g = groups if layer % 2 == 0 else 1  # override_groups_map
                blocks.append(OfficialBlock(cin, width, 2 if j == 0 else 1, g,
                                            use_se, deploy))
                cin, layer = width, layer + 1
            setattr(self, f'stage{i + 1}', nn.Sequential(*blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        for i in range(5):
            x = getattr(self, f'stage{i}')(x)
        return self.linear(self.gap(x).flatten(1))


def official_deploy(model: OfficialRepVGG, arch) -> OfficialRepVGG:
    """The official deploy form, fused with this project's fusion maths."""
    deployed = OfficialRepVGG(arch, NUM_CLASSES, deploy=True)
    state = {}
    for name, block in model.named_modules():
        if isinstance(block, OfficialBlock):
            ident = block.rbr_identity
            kernel, bias = equivalent_kernel_bias(
                block.rbr_dense.conv.weight,
                NormStats.from_module(block.rbr_dense.bn),
                block.rbr_1x1.conv.weight,
                NormStats.from_module(block.rbr_1x1.bn),
                NormStats.from_module(ident) if ident is not None else None,
                block.rbr_dense.conv.groups)
            state[f'{name}.rbr_reparam.weight'] = kernel
            state[f'{name}.rbr_reparam.bias'] = bias
    for key, value in model.state_dict().items():
        if '.se.' in key or key.startswith('linear.'):
            state[key] = value
    deployed.load_state_dict(state, strict=True)
    return deployed.eval()


# ----------------------------------------------------------------------
@torch.no_grad()
def randomize_(model: nn.Module, x: torch.Tensor, seed: int = 0):
    """Random conv / linear weights and biases, then random BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight
            fan_in = w[0].numel()
            w.copy_(torch.randn(w.shape, generator=gen) / fan_in**0.5)
            if module.bias is not None:
                module.bias.copy_(torch.rand(module.bias.shape,
                                             generator=gen) * 0.4 - 0.2)
    randomize_norm_stats_(model, x, seed=seed)
    return model.eval()


def our_classifier(arch, deploy=False, num_classes=NUM_CLASSES):
    cfg = Config(
        dict(default_scope='mmpretrain',
             model=dict(type='ImageClassifier',
                        backbone=dict(type='RepVGGMM', arch=arch,
                                      deploy=deploy),
                        neck=dict(type='GlobalAveragePooling'),
                        head=dict(type='LinearClsHead',
                                  num_classes=num_classes,
                                  in_channels=stage_widths(
                                      parse_arch(arch))[1][-1]))))
    return build_model(cfg).eval()


def imported_logits(source_sd, fmt, arch, x, deploy):
    state_dict, form = import_state_dict(source_sd, fmt, arch)
    assert form == ('deploy' if deploy else 'training')
    model = our_classifier(arch, deploy=deploy)
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        return model(x, mode='tensor')


def max_rel(a, b):
    return relative_errors(a, b)[0][1]


#: seeded: the bound below must not depend on the order the tests ran in
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------
# official
def test_official_key_families():
    keys = OfficialRepVGG(TINY, NUM_CLASSES).state_dict()
    expected = {  # one key of each family, written out
        'stage0.rbr_dense.conv.weight': 'backbone.stem.branch_3x3.conv.weight',
        'stage0.rbr_dense.bn.running_var':
        'backbone.stem.branch_3x3.norm.running_var',
        'stage0.rbr_1x1.bn.weight': 'backbone.stem.branch_1x1.norm.weight',
        'stage1.1.rbr_identity.running_mean':
        'backbone.stage_1.1.branch_norm.running_mean',
        'stage2.1.rbr_dense.conv.weight':  # layer 4: grouped
        'backbone.stage_2.1.branch_3x3.conv.weight',
        'stage0.se.down.weight': 'backbone.stem.se.reduce.weight',
        'stage4.0.se.up.bias': 'backbone.stage_4.0.se.expand.bias',
        'linear.weight': 'head.fc.weight',
        'stage3.0.rbr_reparam.weight':
        'backbone.stage_3.0.branch_reparam.weight',
    }
    for official, ours in expected.items():
        assert rename_key(official, 'official') == ours
    assert keys['stage2.1.rbr_dense.conv.weight'].shape == (32, 16, 3, 3)
    assert 'stage1.0.rbr_identity.weight' not in keys  # stride 2: none


@pytest.mark.parametrize('deploy', [False, True])
def test_official_import_gives_identical_logits(deploy):
    source = randomize_(OfficialRepVGG(TINY, NUM_CLASSES), X)
    with torch.no_grad():
        ref = source(X)
    if deploy:
        source = official_deploy(source, TINY)
        with torch.no_grad():
            assert max_rel(ref, source(X)) <= IMPORT_TOL
    # a DataParallel prefix is dropped too
    sd = {f'module.{k}': v for k, v in source.state_dict().items()}
    assert max_rel(ref, imported_logits(sd, 'official', TINY, X,
                                        deploy)) <= IMPORT_TOL


# ----------------------------------------------------------------------
# mmpretrain 1.2.0
def mmpretrain_model(arch):
    cfg = Config(
        dict(default_scope='mmpretrain',
             model=dict(type='ImageClassifier',
                        backbone=dict(type='RepVGG', arch=arch),
                        neck=dict(type='GlobalAveragePooling'),
                        head=dict(type='LinearClsHead',
                                  num_classes=NUM_CLASSES,
                                  in_channels=256))))
    return build_model(cfg)


MMPRETRAIN_TINY = dict(num_blocks=[2, 2, 2, 1],
                       width_factor=[0.25] * 3 + [0.5],
                       group_layer_map={2: 2, 4: 2, 6: 2},
                       se_cfg=dict(ratio=16, divisor=1))


@pytest.mark.parametrize('se', [False, True])
def test_mmpretrain_import_gives_identical_logits(se):
    arch = dict(MMPRETRAIN_TINY, se_cfg=MMPRETRAIN_TINY['se_cfg'] if se
                else None)
    ours = dict(TINY, se_ratio=16 if se else None)
    source = randomize_(mmpretrain_model(arch), X)
    with torch.no_grad():
        ref = source(X, mode='tensor')
    assert max_rel(ref, imported_logits(source.state_dict(), 'mmpretrain',
                                        ours, X, False)) <= IMPORT_TOL
    source.backbone.switch_to_deploy()
    with torch.no_grad():
        theirs_deployed = source(X, mode='tensor')
    ours_deployed = imported_logits(source.state_dict(), 'mmpretrain', ours,
                                    X, True)
    # our deploy form is the trained function ...
    assert max_rel(ref, ours_deployed) <= IMPORT_TOL
    # ... mmpretrain's is too without SE, but drops the SE gates with it
    if se:
        assert max_rel(ref, theirs_deployed) > 1e-2
    else:
        assert max_rel(ref, theirs_deployed) <= IMPORT_TOL


# ----------------------------------------------------------------------
# timm
def timm_tiny_se():
    from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
    stem, widths = stage_widths(TINY)
    blocks = tuple(
        ByoBlockCfg(type='rep', d=d, c=c,
                    gs=lambda chs, idx: chs // 2 if (idx + 1) % 2 == 0 else 0)
        for d, c in zip(TINY['num_blocks'], widths))
    cfg = ByoModelCfg(blocks=blocks, stem_type='rep', stem_chs=stem,
                      attn_layer='se',
                      attn_kwargs=dict(rd_ratio=1 / 16, rd_divisor=1))
    return ByobNet(cfg, num_classes=NUM_CLASSES)


# a real timm model, and a tiny ByobNet with grouped layers and SE (the real
# b1g4 and d2se are covered structurally below, on the meta device)
@pytest.mark.parametrize('name,deploy', [('repvgg_a0', False),
                                         ('tiny_se', False),
                                         ('tiny_se', True)])
def test_timm_import_gives_identical_logits(name, deploy):
    if name == 'tiny_se':
        source, arch = timm_tiny_se(), TINY
    else:
        source = timm.create_model(name, pretrained=False,
                                   num_classes=NUM_CLASSES)
        arch = name[len('repvgg_'):]
    randomize_(source, X)
    with torch.no_grad():
        ref = source(X)
        if deploy:
            # timm's own fusion: fp32 rounding of the fused kernels (9.3e-6
            # here), within the project's conversion tolerance
            source = reparameterize_model(source)
            assert max_rel(ref, source(X)) <= REL_TOL
            ref = source(X)
    # the import itself: the logits of the model that wrote the weights
    assert max_rel(ref, imported_logits(source.state_dict(), 'timm', arch, X,
                                        deploy)) <= IMPORT_TOL


# ----------------------------------------------------------------------
# every architecture, both forms: same keys and shapes after the mapping
def _layout_after_import(state_dict, fmt, arch):
    mapped, _ = import_state_dict(state_dict, fmt, arch)
    return {k: v.shape for k, v in mapped.items()}


@pytest.mark.parametrize('deploy', [False, True])
def test_all_mmpretrain_archs_have_our_layout(deploy):
    from mmpretrain.models import RepVGG
    for name in ARCH_SETTINGS:
        mm_name = name[0].upper() + name[1:]  # 'B1g2', 'D2se'
        with torch.device('meta'):
            backbone = RepVGG(arch=mm_name, deploy=deploy)
        sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
        assert _layout_after_import(sd, 'mmpretrain', name) == \
            expected_layout(name, deploy), name


def test_all_timm_archs_have_our_layout():
    names = [n for n in timm.list_models('repvgg_*')]
    assert len(names) == 11
    for name in names:
        with torch.device('meta'):
            model = timm.create_model(name, pretrained=False)
        arch = name[len('repvgg_'):]
        assert _layout_after_import(model.state_dict(), 'timm', arch) == \
            expected_layout(arch, False, 1000), name


# ----------------------------------------------------------------------
# the tool
def run_tool(*args):
    proc = run_conftest_tool(TOOL, *args)
    return proc.returncode, proc.stdout + proc.stderr


def test_tool_output_is_a_checkpoint_and_a_pretrained_init(tmp_path):
    source = randomize_(OfficialRepVGG(ARCH_SETTINGS['a0'], NUM_CLASSES), X)
    torch.save(source.state_dict(), tmp_path / 'RepVGG-A0-train.pth')
    out = tmp_path / 'a0.pth'
    code, log = run_tool(tmp_path / 'RepVGG-A0-train.pth', out, '--format',
                         'official', '--arch', 'RepVGG-A0')
    assert code == 0, log
    assert 'RepVGG-a0 in training form, head with 7 classes' in log
    with torch.no_grad():
        ref = source(X)
    # as the checkpoint of the classification config
    model = our_classifier('a0')
    from mmengine.runner.checkpoint import load_checkpoint
    load_checkpoint(model, str(out), strict=True)
    with torch.no_grad():
        assert max_rel(ref, model(X, mode='tensor')) <= IMPORT_TOL
    # as init_cfg=Pretrained(prefix='backbone.') of a backbone
    backbone = RepVGGMM('a0', init_cfg=dict(type='Pretrained',
                                            checkpoint=str(out),
                                            prefix='backbone.'))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key


def test_tool_names_the_right_arch_and_writes_nothing(tmp_path):
    source = timm.create_model('repvgg_a1', pretrained=False)
    torch.save(source.state_dict(), tmp_path / 'a1.pth')
    code, log = run_tool(tmp_path / 'a1.pth', tmp_path / 'o.pth', '--format',
                         'timm', '--arch', 'a0')
    assert code == 2, log
    assert "the timm weights do not fit RepVGG arch 'a0'" in log
    assert sorted(os.listdir(tmp_path)) == ['a1.pth']


def test_wrong_format_is_reported():
    sd = timm_tiny_se().state_dict()
    with pytest.raises(CheckpointError, match=r'no RepVGG block in official '
                       r'layout found .* Is `fmt` right\?'):
        import_state_dict(sd, 'official', TINY)


def test_unknown_keys_are_reported():
    sd = OfficialRepVGG(TINY, NUM_CLASSES).state_dict()
    sd['stage1.0.extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError,
                       match=r'1 unexpected keys: '
                       r'backbone\.stage_1\.0\.extra'):
        import_state_dict(sd, 'official', TINY)


def test_bn_without_num_batches_tracked_is_accepted():
    source = randomize_(OfficialRepVGG(TINY, NUM_CLASSES), X)
    sd = {k: v for k, v in source.state_dict().items()
          if not k.endswith('num_batches_tracked')}
    with torch.no_grad():
        ref = source(X)
    assert max_rel(ref, imported_logits(sd, 'official', TINY, X,
                                        False)) <= IMPORT_TOL


def test_import_never_overwrites_its_source(tmp_path):
    src = tmp_path / 'RepVGG-tiny-train.pth'
    torch.save(OfficialRepVGG(TINY, NUM_CLASSES).state_dict(), src)
    before = src.read_bytes()
    (tmp_path / 'link.pth').symlink_to(src)
    for out in (src, tmp_path / 'link.pth'):
        with pytest.raises(OutputError,
                           match='would overwrite the input SRC'):
            import_weights(str(src), str(out), 'official', 'a0')
    assert src.read_bytes() == before
