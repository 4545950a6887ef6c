"""PSPNet + RepVGG on Cityscapes (issue 5): configs, dilation layout,
exact conversion, ImageNet initialisation, the Cityscapes-layout demo data
and an end-to-end train -> test -> convert -> test run on the CPU."""
import copy
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
from conftest import REL_TOL, ROOT
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from torch.nn import SyncBatchNorm

from harness.demos.cityscapes_dataset import (CityscapesDemoError,
                                              write_cityscapes_demo)
from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import count_repvgg_blocks, switch_to_deploy
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.io.checkpoint import atomic_save
from repvgg_mm.utils.verify import relative_errors

CONFIGS = osp.join(ROOT, 'configs')
NAME = 'pspnet_{}-d8_8xb2-40e_cityscapes-713x713.py'
REPVGG = ('b1g2', 'b1g2-fast', 'b2', 'b2-fast', 'a0')
BASELINES = ('r50', 'r101')
DEMO = osp.join(CONFIGS, 'demo', 'pspnet_repvgg-tiny_cityscapes-demo.py')
#: (aux head, decode head) input widths = widths of RepVGG stages 4 and 5
HEAD_WIDTHS = {'b1g2': (512, 2048), 'b2': (640, 2560), 'a0': (192, 1280),
               'r50': (1024, 2048), 'r101': (1024, 2048)}


def config_path(variant):
    prefix = 'repvgg-' if variant not in BASELINES else ''
    return osp.join(CONFIGS, NAME.format(prefix + variant))


def deploy_config_path(variant):
    name = NAME.format('repvgg-' + variant).replace('.py', '_deploy.py')
    return osp.join(CONFIGS, 'deploy', name)


# the project's own builder: the config's default_scope ('mmseg'), and
# device='meta' skips weight allocation
build_segmentor = build_model


def repvgg_layers(backbone):
    """(stage name, block) for every block, stem first."""
    layers = [('stem', backbone.stem)]
    for name in backbone.stage_names:
        layers += [(name, block) for block in getattr(backbone, name)]
    return layers


# ----------------------------------------------------------------------------
# configs
def protocol(cfg):
    """Everything but the backbone and the heads' input widths."""
    d = cfg.to_dict()
    d['model'].pop('backbone')
    for head in ('decode_head', 'auxiliary_head'):
        d['model'][head].pop('in_channels')
    return d


def test_the_protocol_of_reference_section_5():
    cfg = Config.fromfile(config_path('b1g2'))
    model = cfg.model
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports.imports == ['repvgg_mm']
    # backbone: output stride 8, heads on paper stages 4 and 5
    assert model.type == 'EncoderDecoder'
    assert model.data_preprocessor.type == 'SegDataPreProcessor'
    assert model.data_preprocessor.size == (713, 713)
    assert model.data_preprocessor.seg_pad_val == 255
    bb = model.backbone
    assert (bb.type, bb.arch) == ('RepVGGMM', 'b1g2')
    assert bb.strides == (2, 2, 1, 1) and bb.dilations == (1, 1, 2, 4)
    assert bb.out_indices == (2, 3)
    assert bb.norm_cfg.type == 'SyncBN'
    assert bb.init_cfg.type == 'Pretrained'
    assert bb.init_cfg.prefix == 'backbone.'
    head, aux = model.decode_head, model.auxiliary_head
    assert (head.type, head.in_index, head.pool_scales) == ('PSPHead', 1,
                                                            (1, 2, 3, 6))
    assert (aux.type, aux.in_index) == ('FCNHead', 0)
    assert head.loss_decode.loss_weight == 1.0
    assert aux.loss_decode.loss_weight == 0.4
    for h in (head, aux):
        assert h.num_classes == 19
        assert h.get('ignore_index', 255) == 255
        assert h.norm_cfg.type == 'SyncBN'
    assert model.test_cfg == dict(mode='slide', crop_size=(713, 713),
                                  stride=(476, 476))
    # data: Cityscapes, 713 crops, 2 images per GPU (x 8 GPUs = 16)
    train = cfg.train_dataloader
    assert train.batch_size == 2
    assert train.dataset.type == 'CityscapesDataset'
    crops = [t for t in train.dataset.pipeline if t.type == 'RandomCrop']
    assert [t.crop_size for t in crops] == [(713, 713)]
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'CityscapesDataset'
        assert loader.dataset.data_prefix.img_path == 'leftImg8bit/val'
    assert cfg.val_evaluator.type == 'IoUMetric'
    assert cfg.val_evaluator.iou_metrics == ['mIoU']
    # schedule: SGD 0.01, wd 1e-4, poly 0.9, 40 epochs of 2,975 images
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01,
                                               momentum=0.9,
                                               weight_decay=1e-4)
    [poly] = cfg.param_scheduler
    assert (poly.type, poly.power, poly.end) == ('PolyLR', 0.9, 7440)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 7440 == round(40 * 2975 / 16 / 10) * 10


@pytest.mark.parametrize('variant', REPVGG[1:] + BASELINES)
def test_every_config_has_the_same_protocol(variant):
    reference = protocol(Config.fromfile(config_path('b1g2')))
    assert protocol(Config.fromfile(config_path(variant))) == reference


@pytest.mark.parametrize('variant', BASELINES)
def test_the_resnet_baselines_are_mmsegs_pspnet_backbone(variant):
    bb = Config.fromfile(config_path(variant)).model.backbone
    assert bb.type == 'ResNetV1c'
    assert bb.depth == int(variant[1:])
    assert (bb.strides, bb.dilations) == ((1, 2, 1, 1), (1, 1, 2, 4))
    assert bb.contract_dilation and bb.norm_cfg.type == 'SyncBN'
    assert bb.init_cfg.checkpoint == f'open-mmlab://resnet{variant[1:]}_v1c'


@pytest.mark.parametrize('variant', REPVGG)
def test_the_repvgg_configs_and_their_deploy_configs_build(variant):
    train_cfg = Config.fromfile(config_path(variant))
    deploy_cfg = Config.fromfile(deploy_config_path(variant))
    assert deploy_cfg.model.backbone.deploy is True
    # the deploy config is the training config plus deploy=True, nothing else
    deploy_cfg.model.backbone.pop('deploy')
    assert deploy_cfg.to_dict() == train_cfg.to_dict()

    arch = variant.replace('-fast', '')
    fast = variant.endswith('-fast')
    model = build_segmentor(train_cfg, device='meta')
    assert model.backbone.arch['num_blocks'] == (
        (2, 4, 14, 1) if arch == 'a0' else (4, 6, 16, 1))
    assert model.backbone.layer_dilations[2][-4:] == (2, ) * 4
    assert model.backbone.layer_dilations[2][0] == (1 if fast else 2)
    # head widths follow the backbone's stage widths
    assert model.backbone.out_channels == HEAD_WIDTHS[arch]
    assert (model.auxiliary_head.in_channels,
            model.decode_head.in_channels) == HEAD_WIDTHS[arch]
    deployed = build_segmentor(Config.fromfile(deploy_config_path(variant)),
                               device='meta')
    blocks = count_repvgg_blocks(model)
    assert count_repvgg_blocks(deployed, deployed=True) == blocks
    assert count_repvgg_blocks(deployed, deployed=False) == 0


@pytest.mark.parametrize('variant', BASELINES)
def test_the_resnet_configs_build(variant):
    model = build_segmentor(Config.fromfile(config_path(variant)),
                            device='meta')
    model.eval()
    feats = model.extract_feat(torch.zeros(1, 3, 64, 64, device='meta'))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 8, 8) for c in HEAD_WIDTHS[variant]]
    assert (model.auxiliary_head.in_channels,
            model.decode_head.in_channels) == HEAD_WIDTHS[variant]


def test_another_arch_is_one_cfg_options_away():
    # the command documented in README.md
    cfg = Config.fromfile(config_path('b1g2'))
    cfg.merge_from_dict({
        'model.backbone.arch': 'b3',
        'model.backbone.init_cfg.checkpoint':
        'checkpoints/repvgg-b3_8xb32_in1k.pth',
        'model.decode_head.in_channels': 2560,
        'model.auxiliary_head.in_channels': 768
    })
    model = build_segmentor(cfg, device='meta').eval()
    assert model.backbone.out_channels == (768, 2560)
    logits = model(torch.zeros(1, 3, 64, 64, device='meta'), mode='tensor')
    assert tuple(logits.shape) == (1, 19, 8, 8)


def test_the_docs_table_of_head_widths_is_right():
    """docs/segmentation.md lists both head widths of every arch."""
    from repvgg_mm import ARCH_SETTINGS
    from repvgg_mm.models.arch import stage_widths
    with open(osp.join(ROOT, 'docs', 'segmentation.md')) as f:
        readme = f.read()
    section = readme.split("## ")[0]  # the part before the first section
    starts = ('| a0 ', '| a1, ', '| a2 ', '| b1, ', '| b2, ', '| b3, ')
    rows = [line.strip('|').split('|') for line in section.splitlines()
            if line.startswith(starts)]
    documented = {}
    for archs, aux, decode in rows:
        for arch in archs.split(','):
            documented[arch.strip()] = (int(aux), int(decode))
    assert sorted(documented) == sorted(ARCH_SETTINGS)
    for arch, widths in documented.items():
        assert stage_widths(ARCH_SETTINGS[arch])[1][2:] == widths, arch


# ----------------------------------------------------------------------------
# dilation layout, output stride, exact conversion (B1g2 from its configs)
def expected_layout(fast):
    """(stage, stride, dilation) per layer of B1g2-d8: 1 + 4 + 6 + 16 + 1."""
    stage4 = [1] * 12 + [2] * 4 if fast else [2] * 16
    return ([('stem', 2, 1)] + [('stage_1', 2 if i == 0 else 1, 1)
                                for i in range(4)] +
            [('stage_2', 2 if i == 0 else 1, 1) for i in range(6)] +
            [('stage_3', 1, d) for d in stage4] + [('stage_4', 1, 4)])


def conv_geometry(conv):
    return (conv.kernel_size[0], conv.stride[0], conv.dilation[0],
            conv.padding[0])


def layer_geometry(backbone):
    """Per layer: (stage, [(kernel, stride, dilation, padding) per conv])."""
    geometry = []
    for name, block in repvgg_layers(backbone):
        if block.deploy:
            assert block.branch_3x3 is None
            convs = [block.branch_reparam]
        else:
            convs = [block.branch_3x3.conv, block.branch_1x1.conv]
        geometry.append((name, [conv_geometry(c) for c in convs]))
    return geometry


@pytest.fixture(scope='module', params=['b1g2', 'b1g2-fast'])
def b1g2(request):
    """The config's segmentor, its converted copy, and both forms' outputs."""
    torch.manual_seed(0)
    cfg = Config.fromfile(config_path(request.param))
    # SyncBN as configured: without a process group it normalises like BN
    # and its running statistics fuse like BN's.
    model = build_segmentor(cfg)
    assert isinstance(model.backbone.stem.branch_3x3.norm, SyncBatchNorm)
    assert not torch.distributed.is_initialized()
    x = torch.rand(1, 3, 32, 32)
    randomize_norm_stats_(model.backbone, x)  # calibrated, then perturbed
    randomize_norm_stats_(model.decode_head)
    randomize_norm_stats_(model.auxiliary_head)
    model.eval()
    deployed = switch_to_deploy(model).eval()

    def run(segmentor):
        with torch.no_grad():
            feats = segmentor.extract_feat(x)
            return [*feats, segmentor.decode_head.forward(feats)]

    return dict(fast=request.param.endswith('-fast'), model=model,
                deployed=deployed, outputs=run(model),
                deployed_outputs=run(deployed))


def test_b1g2_layers_stride_dilation_padding_both_forms(b1g2):
    layout = expected_layout(b1g2['fast'])
    train_form = layer_geometry(b1g2['model'].backbone)
    assert train_form == [(name, [(3, s, d, d), (1, s, 1, 0)])
                          for name, s, d in layout]
    deploy_form = layer_geometry(b1g2['deployed'].backbone)
    assert deploy_form == [(name, [(3, s, d, d)]) for name, s, d in layout]
    dilations = [d for _, _, d in layout]
    assert dilations[-17:] == ([1] * 12 + [2] * 4 if b1g2['fast'] else
                               [2] * 16) + [4]
    assert count_repvgg_blocks(b1g2['deployed'], deployed=True) == 28
    assert count_repvgg_blocks(b1g2['deployed'], deployed=False) == 0


def test_b1g2_output_stride_8_at_the_heads(b1g2):
    # a 32x32 input: 4x4 features at both heads' inputs, in both forms
    for outputs in (b1g2['outputs'], b1g2['deployed_outputs']):
        aux_in, psp_in, logits = outputs
        assert tuple(aux_in.shape) == (1, 512, 4, 4)
        assert tuple(psp_in.shape) == (1, 2048, 4, 4)
        assert tuple(logits.shape) == (1, 19, 4, 4)


def test_b1g2_conversion_is_exact(b1g2):
    errors = relative_errors(b1g2['outputs'], b1g2['deployed_outputs'])
    assert len(errors) == 3
    for abs_err, rel_err in errors:
        assert rel_err < REL_TOL, (abs_err, rel_err)
    # a meaningful comparison: the outputs are not vanishingly small
    assert min(o.abs().max().item() for o in b1g2['outputs']) > 1e-3


# ----------------------------------------------------------------------------
# ImageNet initialisation through init_cfg with prefix='backbone.'
def test_imagenet_checkpoint_reaches_the_backbone(tmp_path):
    cfg = Config.fromfile(DEMO)
    # a classifier-shaped checkpoint: backbone.* and an mmpretrain head
    cls_backbone = build_segmentor(cfg).backbone
    gen = torch.Generator().manual_seed(1)
    backbone_state = {
        k: (torch.randn(v.shape, generator=gen) if v.is_floating_point()
            else v + 7)
        for k, v in cls_backbone.state_dict().items()
    }
    state = {f'backbone.{k}': v for k, v in backbone_state.items()}
    state['head.fc.weight'] = torch.randn(1000, 128, generator=gen)
    state['head.fc.bias'] = torch.randn(1000, generator=gen)
    ckpt = str(tmp_path / 'repvgg-tiny_in1k.pth')
    atomic_save(dict(state_dict=state, meta=dict(epoch=120)), ckpt)

    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=ckpt,
                                       prefix='backbone.')
    model = build_segmentor(cfg)
    before = model.backbone.state_dict()
    assert not torch.equal(before['stem.branch_3x3.conv.weight'],
                           backbone_state['stem.branch_3x3.conv.weight'])
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert sorted(loaded) == sorted(backbone_state)
    for key, value in backbone_state.items():
        assert torch.equal(loaded[key], value), key


# ----------------------------------------------------------------------------
# the Cityscapes-layout demo data
def test_demo_data_has_the_exact_cityscapes_layout(tmp_path):
    root = str(tmp_path / 'cityscapes')
    stats = write_cityscapes_demo(root, num_train=4, num_val=2,
                                  size=(32, 64), seed=3)
    assert stats['train']['images'] == 4 and stats['val']['images'] == 2
    files = sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs)
    assert files == [
        'gtFine/train/aachen/aachen_000000_000000_gtFine_labelTrainIds.png',
        'gtFine/train/aachen/aachen_000000_000003_gtFine_labelTrainIds.png',
        'gtFine/train/bochum/bochum_000000_000001_gtFine_labelTrainIds.png',
        'gtFine/train/bremen/bremen_000000_000002_gtFine_labelTrainIds.png',
        'gtFine/val/frankfurt/frankfurt_000000_000000_gtFine_labelTrainIds'
        '.png',
        'gtFine/val/lindau/lindau_000000_000001_gtFine_labelTrainIds.png',
        'leftImg8bit/train/aachen/aachen_000000_000000_leftImg8bit.png',
        'leftImg8bit/train/aachen/aachen_000000_000003_leftImg8bit.png',
        'leftImg8bit/train/bochum/bochum_000000_000001_leftImg8bit.png',
        'leftImg8bit/train/bremen/bremen_000000_000002_leftImg8bit.png',
        'leftImg8bit/val/frankfurt/frankfurt_000000_000000_leftImg8bit.png',
        'leftImg8bit/val/lindau/lindau_000000_000001_leftImg8bit.png',
    ]
    label = Image.open(osp.join(root, files[0]))
    image = Image.open(osp.join(root, files[6]))
    assert (label.mode, label.size) == ('L', (64, 32))
    assert (image.mode, image.size) == ('RGB', (64, 32))
    values = set(np.unique(np.asarray(label)).tolist())
    assert values <= set(range(19)) | {255} and len(values - {255}) >= 5

    # the unmodified mmseg dataset and pipeline read it
    from mmseg.datasets import CityscapesDataset
    init_default_scope('mmseg')
    dataset = CityscapesDataset(
        data_root=root,
        data_prefix=dict(img_path='leftImg8bit/train',
                         seg_map_path='gtFine/train'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')])
    assert len(dataset) == 4
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 64)
    gt = sample['data_samples'].gt_sem_seg.data
    assert torch.equal(gt[0], torch.from_numpy(np.asarray(label)).long())
    assert stats['train']['ignored_pixels'] == sum(
        int((np.asarray(Image.open(osp.join(root, f))) == 255).sum())
        for f in files[:4])


def test_demo_data_refuses_to_overwrite_and_bad_sizes(tmp_path, monkeypatch,
                                                      capsys):
    root = tmp_path / 'taken'
    root.mkdir()
    (root / 'precious.txt').write_text('keep me')
    with pytest.raises(CityscapesDemoError, match='not empty. Pass '
                       '--overwrite'):
        write_cityscapes_demo(str(root), num_train=1, num_val=1)
    assert os.listdir(root) == ['precious.txt']
    with pytest.raises(CityscapesDemoError, match='size must be two'):
        write_cityscapes_demo(str(tmp_path / 'x'), size=(8, 64))
    with pytest.raises(CityscapesDemoError, match='num_val must be'):
        write_cityscapes_demo(str(tmp_path / 'x'), num_val=0)
    assert not (tmp_path / 'x').exists()
    # the tool: a one-paragraph error and exit status 2
    tool = osp.join(ROOT, 'tools', 'make_cityscapes_demo.py')
    monkeypatch.setattr(sys, 'argv', [tool, str(root), '--num-train', '1'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(tool, run_name='__main__')
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: "') and 'is not empty' in err
    assert os.listdir(root) == ['precious.txt']


# ----------------------------------------------------------------------------
# end to end on the CPU: train -> mIoU -> convert -> the same mIoU
def demo_runner(cfg, work_dir, **changes):
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(changes)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(work_dir)  # one logger per runner
    return Runner.from_cfg(cfg)


@pytest.mark.slow
def test_demo_train_test_convert_test(tmp_path):
    data = tmp_path / 'data'
    write_cityscapes_demo(str(data), num_train=24, num_val=6, seed=0)
    cfg = Config.fromfile(DEMO)  # as run by hand in the README
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': str(data),
        'val_dataloader.dataset.data_root': str(data),
        'test_dataloader.dataset.data_root': str(data),
        'randomness': dict(seed=0),
    })
    iters = cfg.train_cfg.max_iters
    assert cfg.model.backbone.layer_dilations == (None, None, [2] * 4, [4])

    trainer = demo_runner(cfg, tmp_path / 'train')
    trainer.train()
    trained = trainer.test()
    # chance level is ~3 mIoU (19 classes); the README's run reached 20.41
    assert trained['mIoU'] > 10, trained
    ckpt = tmp_path / 'train' / f'iter_{iters}.pth'
    assert ckpt.is_file()

    # convert (as tools/convert_deploy.py does) and test the deploy config
    converted = switch_to_deploy(trainer.model).eval()
    assert count_repvgg_blocks(converted, deployed=False) == 0
    deploy_ckpt = str(tmp_path / 'deploy.pth')
    atomic_save(dict(state_dict=converted.state_dict(), meta={}), deploy_ckpt)
    tester = demo_runner(cfg, tmp_path / 'deploy', load_from=deploy_ckpt,
                         **{'model.backbone.deploy': True})
    deployed = tester.test()
    assert count_repvgg_blocks(tester.model, deployed=True) == 11
    assert count_repvgg_blocks(tester.model, deployed=False) == 0
    assert abs(deployed['mIoU'] - trained['mIoU']) <= 1e-6
    assert abs(deployed['aAcc'] - trained['aAcc']) <= 1e-6

    # the training checkpoint fused on load by the deploy model: the same
    fused = demo_runner(cfg, tmp_path / 'fused', load_from=str(ckpt),
                        **{'model.backbone.deploy': True}).test()
    assert abs(fused['mIoU'] - trained['mIoU']) <= 1e-6

    # and the logits of one validation batch agree within REL_TOL
    batch = next(iter(tester.test_dataloader))
    trainer.model.eval()
    with torch.no_grad():
        ref = trainer.model.test_step(batch)[0]
        out = tester.model.test_step(batch)[0]
    [(_, rel_err)] = relative_errors(ref.seg_logits.data, out.seg_logits.data)
    assert rel_err < REL_TOL
    assert torch.equal(ref.pred_sem_seg.data, out.pred_sem_seg.data)
    assert len(ref.pred_sem_seg.data.unique()) > 1  # not a constant guess

    # INT8 of the trained segmentor (ONNX Runtime; NNCF stays out of this
    # process, see test_quantize.py) with --eval's mIoU. The graph is
    # whole-image inference, so its fp32 mIoU is the torch model's with
    # test_cfg.mode='whole' (the config's own protocol is slide).
    from repvgg_mm.apis import quantize_model
    whole = demo_runner(cfg, tmp_path / 'whole', load_from=str(ckpt),
                        **{'model.test_cfg.mode': 'whole'}).test()
    roots = {f'{split}_dataloader.dataset.data_root': str(data)
             for split in ('train', 'val', 'test')}
    result = quantize_model(DEMO, str(ckpt), str(tmp_path / 'psp_int8.onnx'),
                            backend='onnxruntime', calib=8, evaluate=True,
                            cfg_options=roots, progress=False)
    assert result['metric'] == 'mIoU' and result['num_val_images'] == 6
    assert abs(result['top1_fp32'] - whole['mIoU']) <= 0.01, (result, whole)
    assert abs(result['top1_int8'] - result['top1_fp32']) <= 2.0, result
    # measured: 14.41 -> 14.54 mIoU, 96.6 % of pixels alike, 27.4 dB
    assert 0.95 <= result['agreement'] <= 1.0, result  # per pixel
    assert result['output_sqnr_db'] > 20, result
    assert os.path.isfile(result['int8_path'])
