"""RetinaNet + RepVGG + FPN (issue 12): configs in mmdet conventions, FPN
widths for every arch, exact conversion of a detector, the COCO-format
digits demo data, and the workflow through the real tools (train, test,
SwitchToDeployHook, convert --verify, deploy test, dist_train.sh,
benchmark) on tiny settings.
"""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from conftest import REL_TOL, ROOT, call_tool, tool_log
from mmengine.config import Config
from mmengine.registry import init_default_scope

from harness.demos.digits_detection_dataset import (CLASSES,
                                                    DigitsDetectionError,
                                                    ann_file, ink_box,
                                                    write_digits_detection)
from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import ARCH_SETTINGS, count_repvgg_blocks, switch_to_deploy
from repvgg_mm.converters.config_model import build_model, input_size
from repvgg_mm.engine.config_checks import check_neck_channels
from repvgg_mm.errors import ConfigError
from repvgg_mm.models.arch import stage_widths
from repvgg_mm.utils.verify import forward_tensor, relative_errors

CONFIGS = osp.join(ROOT, 'configs')
NAME = 'retinanet_{}_fpn_1x_coco.py'
REPVGG = ('a0', 'b1g2')
DEMO = osp.join(CONFIGS, 'demo', 'retinanet_repvgg-tiny_digits-det.py')
#: FPN inputs = widths of RepVGG stages 2-5 (the FPN reads the last three)
FPN_WIDTHS = {'a0': [48, 96, 192, 1280], 'b1g2': [128, 256, 512, 2048],
              'r50': [256, 512, 1024, 2048]}


def config_path(variant):
    prefix = 'repvgg-' if variant in REPVGG else ''
    return osp.join(CONFIGS, NAME.format(prefix + variant))


def deploy_config_path(variant):
    name = NAME.format('repvgg-' + variant).replace('.py', '_deploy.py')
    return osp.join(CONFIGS, 'deploy', name)


# the project's own builder: the config's default_scope ('mmdet'), and
# device='meta' skips weight allocation
build_detector = build_model


def mmdet_config(rel_path):
    import mmdet
    return Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim',
                                    'configs', rel_path))


# ----------------------------------------------------------------------------
# configs
def without_backbone(cfg):
    """Everything but the backbone and the FPN widths that follow from it."""
    d = cfg.to_dict()
    d['model'].pop('backbone')
    d['model']['neck'].pop('in_channels')
    return d


def test_the_a0_config_is_mmdets_retinanet_1x_recipe():
    cfg = Config.fromfile(config_path('a0'))
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports.imports == ['repvgg_mm']
    model = cfg.model
    assert model.type == 'RetinaNet'
    bb = model.backbone
    assert (bb.type, bb.arch, bb.out_indices) == ('RepVGGMM', 'a0',
                                                  (0, 1, 2, 3))
    assert bb.norm_cfg.type == 'SyncBN' and bb.frozen_stages == 1
    assert bb.init_cfg == dict(
        type='Pretrained', checkpoint='checkpoints/repvgg-a0_8xb32_in1k.pth',
        prefix='backbone.')
    neck = model.neck
    assert (neck.type, neck.start_level, neck.num_outs,
            neck.add_extra_convs) == ('FPN', 1, 5, 'on_input')
    assert model.bbox_head.type == 'RetinaHead'
    assert model.bbox_head.num_classes == 80
    # COCO, 2 images per GPU, 1333x800
    assert cfg.train_dataloader.batch_size == 2
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        assert loader.dataset.type == 'CocoDataset'
        resize = [t for t in loader.dataset.pipeline if t.type == 'Resize']
        assert [t.scale for t in resize] == [(1333, 800)]
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.metric == 'bbox'
    # 1x: 12 epochs, lr 0.01 (RetinaNet, batch 16), steps at 8 and 11
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=12,
                                 val_interval=1)
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01,
                                               momentum=0.9,
                                               weight_decay=0.0001)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500,
                                                          False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert cfg.auto_scale_lr.base_batch_size == 16
    # the network input mmdet feeds at 1333x800: padded to 32
    assert input_size(cfg) == ((800, 1344), 'test_dataloader pipeline')


@pytest.mark.parametrize('variant', ['b1g2', 'r50'])
def test_the_other_configs_differ_only_in_the_backbone(variant):
    reference = without_backbone(Config.fromfile(config_path('a0')))
    cfg = Config.fromfile(config_path(variant))
    assert without_backbone(cfg) == reference
    assert cfg.model.neck.in_channels == FPN_WIDTHS[variant]


def test_the_resnet50_baseline_is_mmdets_own_retinanet():
    ours = Config.fromfile(config_path('r50'))
    theirs = mmdet_config('retinanet/retinanet_r50_fpn_1x_coco.py')
    assert ours.model.to_dict() == theirs.model.to_dict()
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'train_cfg', 'param_scheduler', 'optim_wrapper',
                'auto_scale_lr'):
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize('variant', REPVGG)
def test_the_repvgg_configs_and_their_deploy_configs_build(variant):
    train_cfg = Config.fromfile(config_path(variant))
    deploy_cfg = Config.fromfile(deploy_config_path(variant))
    assert deploy_cfg.model.backbone.deploy is True
    deploy_cfg.model.backbone.pop('deploy')
    assert deploy_cfg.to_dict() == train_cfg.to_dict()

    model = build_detector(train_cfg, device='meta')
    assert list(model.backbone.out_channels) == FPN_WIDTHS[variant]
    assert [c.conv.in_channels for c in model.neck.lateral_convs] == \
        FPN_WIDTHS[variant][1:]
    deployed = build_detector(Config.fromfile(deploy_config_path(variant)),
                              device='meta')
    blocks = count_repvgg_blocks(model)
    assert blocks == (22 if variant == 'a0' else 28)
    assert count_repvgg_blocks(deployed, deployed=True) == blocks
    assert count_repvgg_blocks(deployed, deployed=False) == 0


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_fpn_widths_for_every_arch(arch):
    """The documented FPN in_channels of every arch build a detector whose
    FPN reads the backbone's outputs (meta tensors: no weights)."""
    widths = list(stage_widths(ARCH_SETTINGS[arch])[1])
    cfg = Config.fromfile(config_path('a0'))
    cfg.merge_from_dict({'model.backbone.arch': arch,
                         'model.neck.in_channels': widths})
    check_neck_channels(cfg)  # accepted
    model = build_detector(cfg, device='meta').eval()
    assert list(model.backbone.out_channels) == widths
    feats = model.extract_feat(torch.zeros(1, 3, 64, 96, device='meta'))
    assert [tuple(f.shape) for f in feats] == [
        (1, 256, -(-8 // 2**i), -(-12 // 2**i)) for i in range(5)]
    documented = re.findall(r'^\| ([\w, ]+?) \| \[([\d, ]+)\] \|',
                            _detection_doc(), re.M)
    rows = {a.strip(): [int(w) for w in ws.split(',')]
            for names, ws in documented for a in names.split(',')}
    assert rows[arch] == widths


def _detection_doc():
    with open(osp.join(ROOT, 'docs', 'detection.md')) as f:
        return f.read()


def test_fpn_widths_that_do_not_match_the_arch_name_the_fix(tmp_path,
                                                            monkeypatch,
                                                            capsys):
    cfg = Config.fromfile(config_path('a0'))
    cfg.merge_from_dict({'model.backbone.arch': 'b1g2'})
    with pytest.raises(ConfigError) as exc:
        check_neck_channels(cfg)
    assert str(exc.value).startswith(
        'model.neck.in_channels=[48, 96, 192, 1280] does not match the '
        'backbone: RepVGGMM b1g2 with out_indices=(0, 1, 2, 3) outputs '
        '[128, 256, 512, 2048] channels. Set model.neck.in_channels='
        '[128, 256, 512, 2048] in ')
    assert str(exc.value).endswith(
        '(or `cfg_options=model.neck.in_channels=[128,256,512,2048]`).')
    # the tools stop there, before any work: exit 2, one paragraph
    for tool, args in (('train.py', ['--check-only']),
                       ('convert_deploy.py', ['x.pth', str(tmp_path / 'o'
                                                           '.pth')])):
        monkeypatch.chdir(tmp_path)
        proc = call_tool(tool, config_path('a0'), *args, '--cfg-options',
                         'model.backbone.arch=b1g2', capsys=capsys)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.startswith('error: model.neck.in_channels=')
        assert 'Set model.neck.in_channels=[128, 256, 512, 2048]' in \
            proc.stderr and 'Traceback' not in proc.stderr
    assert os.listdir(tmp_path) == []
    # the fix works
    cfg.merge_from_dict({'model.neck.in_channels': [128, 256, 512, 2048]})
    check_neck_channels(cfg)


# ----------------------------------------------------------------------------
# exact conversion of the detector (SyncBN as configured)
@pytest.mark.parametrize('variant', REPVGG)
def test_detector_outputs_before_and_after_conversion(variant):
    cfg = Config.fromfile(config_path(variant))
    model = build_detector(cfg)
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    randomize_norm_stats_(model.backbone, x)  # calibrated, then perturbed
    model.eval()
    deployed = switch_to_deploy(model).eval()
    assert count_repvgg_blocks(deployed, deployed=False) == 0
    with torch.no_grad():
        ref, out = forward_tensor(model, x), forward_tensor(deployed, x)
    # (class scores, box deltas) for each of the 5 FPN levels
    assert [len(o) for o in ref] == [5, 5]
    errors = relative_errors(ref, out)
    assert len(errors) == 10
    for abs_err, rel_err in errors:
        assert rel_err <= REL_TOL, (abs_err, rel_err)
    assert min(t.abs().max().item() for t in ref[0]) > 1e-2  # not trivial


# ----------------------------------------------------------------------------
# the COCO-format digits data
def test_demo_data_is_coco_format_with_known_boxes(tmp_path):
    root = str(tmp_path / 'digits_det')
    stats = write_digits_detection(root, num_train=6, num_val=3, seed=1)
    assert sorted(os.listdir(root)) == ['annotations', 'train', 'val']
    assert sorted(os.listdir(osp.join(root, 'train'))) == [
        f'{i:06d}.png' for i in range(6)]
    with open(osp.join(root, ann_file('train'))) as f:
        coco = json.load(f)
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    assert len(coco['images']) == 6
    assert len(coco['annotations']) == stats['train']['boxes'] >= 6
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64
        assert w > 0 and h > 0 and ann['iscrowd'] == 0

    # a box is the ink of the digit: a 3-wide, 6-high stroke drawn 16 px
    scan = np.zeros((8, 8))
    scan[1:7, 2:5] = 9
    assert ink_box(scan, 16) == (4.0, 2.0, 6.0, 12.0)

    # the unmodified mmdet dataset reads it
    from mmdet.datasets import CocoDataset
    init_default_scope('mmdet')
    dataset = CocoDataset(
        data_root=root, ann_file=ann_file('train'),
        data_prefix=dict(img='train/'), metainfo=dict(classes=CLASSES),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='PackDetInputs')])
    assert len(dataset) == 6
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 64, 64)
    first = [a for a in coco['annotations'] if a['image_id'] == 0]
    gt = sample['data_samples'].gt_instances
    assert gt.labels.tolist() == [a['category_id'] - 1 for a in first]
    x, y, w, h = first[0]['bbox']
    assert torch.allclose(gt.bboxes.tensor[0],
                          torch.tensor([x, y, x + w, y + h]))


def test_demo_data_refuses_bad_settings_and_overwriting(tmp_path, capsys):
    root = tmp_path / 'taken'
    root.mkdir()
    (root / 'precious.txt').write_text('keep me')
    with pytest.raises(DigitsDetectionError, match='not empty. Pass '
                       '--overwrite'):
        write_digits_detection(str(root), num_train=1, num_val=1)
    assert os.listdir(root) == ['precious.txt']
    with pytest.raises(DigitsDetectionError, match='digit sizes must'):
        write_digits_detection(str(tmp_path / 'x'), digit_sizes=(14, 80))
    with pytest.raises(DigitsDetectionError, match='num_val must be'):
        write_digits_detection(str(tmp_path / 'x'), num_val=0)
    assert sorted(os.listdir(tmp_path)) == ['taken']
    proc = call_tool('make_digits_detection.py', root, capsys=capsys)
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: "') and 'is not empty' in \
        proc.stderr
    assert os.listdir(root) == ['precious.txt']


# ----------------------------------------------------------------------------
# the demo through the real tools on tiny settings
EPOCHS = 4
BASE_CFG = """
_base_ = {demo!r}
data_root = {data!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=20),
    dict(type='MultiStepLR', begin=0, end={epochs}, by_epoch=True,
         milestones=[{epochs}], gamma=0.1)]
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
default_hooks = dict(checkpoint=dict(interval={epochs}))
randomness = dict(seed=0)
"""
HOOK_CFG = """
_base_ = {base!r}
custom_hooks = [dict(type='SwitchToDeployHook')]
"""
METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')


def coco_metrics(log: str):
    found = {k: re.findall(rf'coco/{k}: ([\d.]+)', log) for k in METRICS}
    assert all(found.values()), log[-3000:]
    return {k: float(v[-1]) for k, v in found.items()}


@pytest.mark.slow
def test_demo_train_test_convert_test_through_the_tools(tmp_path):
    data = tmp_path / 'data'
    tool_log('make_digits_detection.py', data, '--num-train', 160,
             '--num-val', 40, cwd=tmp_path)
    base = tmp_path / 'demo_cfg.py'
    base.write_text(BASE_CFG.format(demo=DEMO, data=f'{data}/',
                                    epochs=EPOCHS))
    hooked = tmp_path / 'demo_hook_cfg.py'
    hooked.write_text(HOOK_CFG.format(base=str(base)))

    work = tmp_path / 'work'
    tool_log('train.py', base, '--work-dir', work, cwd=tmp_path)
    ckpt = work / f'epoch_{EPOCHS}.pth'
    assert ckpt.is_file()

    test_tool = 'test.py'
    trained = coco_metrics(tool_log(test_tool, base, ckpt, '--work-dir',
                                    tmp_path / 't1', cwd=tmp_path))
    # chance is ~0 (10 classes, tight boxes); 80 iterations already learn
    assert trained['bbox_mAP_50'] > 0.01, trained
    hook_log = tool_log(test_tool, hooked, ckpt, '--work-dir',
                        tmp_path / 't2', cwd=tmp_path)
    assert ('SwitchToDeployHook: test runs on a converted copy of the model '
            '(7 RepVGG blocks fused)') in hook_log
    assert coco_metrics(hook_log) == trained

    out = tmp_path / 'deploy' / 'det_deploy.pth'
    log = tool_log('convert_deploy.py', base, ckpt, out, '--verify',
                   cwd=tmp_path)
    assert 'verify: OK' in log and 'random input of shape (1, 3, 64, 64)' \
        in log
    rel = float(re.search(r'relative to the largest output: ([\d.e+-]+)',
                          log).group(1))
    assert rel <= REL_TOL
    deploy_cfg = Config.fromfile(str(out.with_suffix('.py')))
    assert deploy_cfg.model.backbone.deploy is True
    deployed = coco_metrics(tool_log(test_tool, out.with_suffix('.py'),
                                     out, '--work-dir', tmp_path / 't3',
                                     cwd=tmp_path))
    assert deployed == trained


@pytest.mark.slow
def test_demo_dist_train_two_cpu_ranks(tmp_path):
    data = tmp_path / 'data'
    write_digits_detection(str(data), num_train=32, num_val=8)
    base = tmp_path / 'demo_cfg.py'
    base.write_text(BASE_CFG.format(demo=DEMO, data=f'{data}/', epochs=1))
    work = tmp_path / 'work'
    log = tool_log('dist_train.sh', base, 2, '--work-dir', work,
                   cwd=tmp_path, env=dict(PORT='29653'))
    # 32 images / (2 ranks x 8) = 2 iterations per epoch
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\]', log), log[-3000:]
    # validation ran on both ranks' shares (8 images: 1 batch each) and the
    # COCO evaluation on rank 0 (2 iterations find no box above score_thr)
    assert re.search(r'Epoch\(val\) \[1\]\[1/1\]', log), log[-3000:]
    assert log.count('Evaluating bbox...') == 1
    ckpt = torch.load(str(work / 'epoch_1.pth'), weights_only=False)
    assert ckpt['meta']['iter'] == 2


def test_benchmark_detection_protocol_both_forms(tmp_path):
    from harness.benchmark.api import benchmark
    from harness.benchmark.protocol import protocol_of, resolve
    assert resolve('detection') == (1, (800, 1333))
    out_json = str(tmp_path / 'bench.json')
    record = benchmark(DEMO, shape=[64, 96], warmup=0, iters=1, rounds=1,
                       threads=1, gemm=False, json_out=out_json)
    with open(out_json) as f:
        assert json.load(f)['models'][0]['task'] == 'detection'
    (det, ) = record['models']
    assert (det['task'], det['batch_size'], det['shape']) == (
        'detection', 1, [64, 96])
    assert det['deploy_steps'].startswith('7 RepVGG blocks')
    assert det['max_rel_err'] <= REL_TOL
    for row in det['rows']:
        assert row['images_per_s']['median'] > 0
        assert row['output_rel_err'] <= REL_TOL
    assert det['params']['deploy'] < det['params']['train']
    model = build_detector(Config.fromfile(DEMO), device='meta')
    assert protocol_of(model) == 'detection'
