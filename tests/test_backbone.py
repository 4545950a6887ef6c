"""RepVGGMM: architectures, options, exact conversion of every arch."""
import pytest
import torch
from conftest import REL_TOL

from harness.fusion_check import conversion_errors
from repvgg_mm import ARCH_SETTINGS, RepVGGBlock, RepVGGMM

ALL_ARCHS = ['a0', 'a1', 'a2', 'b0', 'b1', 'b1g2', 'b1g4', 'b2', 'b2g2',
             'b2g4', 'b3', 'b3g2', 'b3g4', 'd2se']
TINY = dict(num_blocks=[2, 2, 3, 1], width_factor=[0.25, 0.25, 0.25, 0.5])

# paper Sec. 3.4, Table 2: stem + four stage widths
WIDTHS = {
    'a0': (48, 48, 96, 192, 1280), 'a1': (64, 64, 128, 256, 1280),
    'b0': (64, 64, 128, 256, 1280), 'a2': (64, 96, 192, 384, 1408),
    'b1': (64, 128, 256, 512, 2048), 'b2': (64, 160, 320, 640, 2560),
    'd2se': (64, 160, 320, 640, 2560), 'b3': (64, 192, 384, 768, 2560),
}


def test_the_fourteen_architectures_are_known():
    assert sorted(ARCH_SETTINGS) == sorted(ALL_ARCHS)


@pytest.mark.parametrize('arch', sorted(WIDTHS))
def test_stage_widths_match_the_paper(arch):
    model = RepVGGMM(arch, out_indices=(0, 1, 2, 3))
    widths = (model.stem.out_channels, ) + model.out_channels
    assert widths == WIDTHS[arch]


@pytest.mark.parametrize('arch,groups', [('b1g2', 2), ('b2g4', 4),
                                         ('b3g2', 2)])
def test_grouped_layers_are_the_even_ones(arch, groups):
    model = RepVGGMM(arch)
    layers = [b for name in model.stage_names for b in getattr(model, name)]
    assert len(layers) == 27
    assert model.stem.groups == 1
    assert [i + 1 for i, b in enumerate(layers) if b.groups == groups] == \
        list(range(2, 27, 2))
    assert all(b.groups == 1 for i, b in enumerate(layers) if i % 2 == 0)


def test_block_counts_strides_and_identity_branches():
    model = RepVGGMM('b0')
    assert [len(getattr(model, n)) for n in model.stage_names] == [4, 6, 16, 1]
    assert model.stem.stride == 2
    for name in model.stage_names:
        stage = getattr(model, name)
        assert stage[0].stride == 2 and stage[0].branch_norm is None
        assert all(b.stride == 1 and b.branch_norm is not None
                   for b in stage[1:])


def test_arch_name_is_case_insensitive():
    assert RepVGGMM('B1g2').arch == RepVGGMM('b1g2').arch


def test_out_indices_shapes_and_non_square_input():
    model = RepVGGMM(TINY, out_indices=(0, 1, 2, -1)).eval()
    outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 24), (1, 32, 8, 12),
                                              (1, 64, 4, 6), (1, 256, 2, 3)]


def test_dilated_stride_one_stages():
    model = RepVGGMM(TINY, out_indices=(3, ), strides=(2, 2, 1, 1),
                     dilations=(1, 1, 2, 4)).eval()
    assert model(torch.randn(1, 3, 64, 64))[0].shape[-2:] == (8, 8)
    for block in model.stage_3:
        assert block.dilation == 2
        assert block.branch_3x3.conv.padding == (2, 2)
    assert model.stage_4[0].branch_3x3.conv.dilation == (4, 4)


def test_layer_dilations_override_the_last_layers():
    model = RepVGGMM('b1g2', strides=(2, 2, 1, 1),
                     layer_dilations=(None, None, [2, 2, 2, 2], [4]))
    assert [b.dilation for b in model.stage_3] == [1] * 12 + [2] * 4
    assert [b.dilation for b in model.stage_4] == [4]
    assert [b.stride for b in model.stage_3] == [1] * 16


# Exact equivalence (issue 2, item 6). Input 1x3x64x48: non-square, and every
# stage output is at least 2x1.
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_conversion_is_exact_for_every_architecture(arch):
    model = RepVGGMM(arch, out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, 64, 48)
    errors = conversion_errors(model, x, seed=1)
    assert len(errors) == 4
    worst = max(rel for _, rel in errors)
    print(f'{arch}: worst relative error {worst:.2e}')
    assert worst <= REL_TOL


@pytest.mark.parametrize('variant', ['d8', 'fast'])
def test_conversion_is_exact_for_dilated_variants(variant):
    kwargs = (dict(dilations=(1, 1, 2, 4)) if variant == 'd8' else
              dict(layer_dilations=(None, None, [2, 2], [4])))
    model = RepVGGMM(TINY, out_indices=(2, 3), strides=(2, 2, 1, 1), **kwargs)
    errors = conversion_errors(model, torch.randn(2, 3, 40, 56))
    assert max(rel for _, rel in errors) <= REL_TOL


def test_syncbn_backbone_converts_on_cpu_without_process_group():
    model = RepVGGMM(TINY, norm_cfg=dict(type='SyncBN'))
    assert isinstance(model.stem.branch_3x3.norm, torch.nn.SyncBatchNorm)
    errors = conversion_errors(model, torch.randn(2, 3, 32, 32),
                               calibrate=False)
    assert max(rel for _, rel in errors) <= REL_TOL


def test_backbone_switch_to_deploy_in_place():
    model = RepVGGMM(TINY)
    model.switch_to_deploy()
    assert model.deploy
    assert all(b.deploy for b in model.blocks())
    assert not any('branch_3x3' in k for k in model.state_dict())


def test_frozen_stages_and_norm_eval():
    model = RepVGGMM(TINY, frozen_stages=2, norm_eval=True)
    model.train()
    frozen = [model.stem, model.stage_1, model.stage_2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.stage_3.parameters())
    assert all(not m.training for m in model.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    model.switch_to_deploy()
    assert all(not p.requires_grad for m in frozen for p in m.parameters())


def test_with_cp_backbone_trains():
    model = RepVGGMM(TINY, with_cp=True).train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    model(x)[0].sum().backward()
    assert model.stem.branch_3x3.conv.weight.grad.abs().sum() > 0


def test_deploy_backbone_has_only_fused_convs():
    model = RepVGGMM('a0', deploy=True)
    assert all(isinstance(b, RepVGGBlock) and b.deploy for b in model.blocks())
    assert len(model.blocks()) == 22


# Bad input (issue 2, item 9)
@pytest.mark.parametrize('kwargs,message', [
    (dict(arch='a9'), 'unknown RepVGG arch "a9"; valid names are: a0, a1'),
    (dict(arch=dict(num_blocks=[1, 1, 1], width_factor=[1, 1, 1, 1])),
     r'arch\["num_blocks"\] must have 4 entries'),
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1, 1, 1])),
     r'arch\["width_factor"\] must have 4 entries'),
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1] * 4,
                    colour='red')), r"unknown arch field\(s\) \['colour'\]"),
    (dict(arch=dict(num_blocks=[2, 2, 2, 2], width_factor=[1] * 4,
                    groups=3)), r'arch\["groups"\]=3 does not divide'),
    (dict(arch='a0', out_indices=(4, )), r'out_indices must be in \[-4, 3\]'),
    (dict(arch='a0', strides=(2, 2, 2)), 'strides must have 4 entries'),
    (dict(arch='a0', dilations=(1, 1, 2)), 'dilations must have 4 entries'),
    (dict(arch='a0', layer_dilations=(None, None, None, [4, 4])),
     r'layer_dilations\[3\] has 2 entries but stage 3 has only 1 layers'),
    (dict(arch='a0', frozen_stages=5), r'frozen_stages must be in \[-1, 4\]'),
])
def test_bad_arguments_raise_value_error_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepVGGMM(**kwargs)
