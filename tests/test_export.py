"""tools/export.py and repvgg_mm.runtime: ONNX / OpenVINO export, verified.

Tiny models at 64x64 (or smaller) so the file runs in about a minute.
"""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import ROOT, call_tool

from harness.benchmark.sources import resolve_config_path
from harness.fusion_check import randomize_norm_stats_
from repvgg_mm.apis import convert_checkpoint, export_model
from repvgg_mm.apis.export import image_like, reference_outputs
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.deploy import switch_to_deploy
from repvgg_mm.io.checkpoint import atomic_save
from repvgg_mm.runtime import open_session, supports_bf16
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.verify import relative_errors

TOL = 1e-4
TINY = dict(num_blocks=[1, 2, 1, 1], width_factor=[0.125] * 4)
A0 = osp.join(ROOT, 'configs/repvgg-a0_8xb32_in1k.py')
B1G2 = osp.join(ROOT, 'configs/repvgg-b1g2_8xb32_in1k.py')
D2SE = osp.join(ROOT, 'configs/repvgg-d2se_8xb32_in1k.py')
PSP = osp.join(ROOT, 'configs/demo/pspnet_repvgg-tiny_cityscapes-demo.py')


def _tiny(base, folder, **arch):
    """The config ``base`` with a scaled-down arch (``arch``: groups=2 for
    a tiny B1g2, se_ratio for a tiny D2se)."""
    path = osp.join(folder, f'tiny_{osp.basename(base)}')
    with open(path, 'w') as f:
        f.write(f"_base_ = {base!r}\n"
                f"model = dict(backbone=dict(arch=dict(_delete_=True, "
                f"**{dict(TINY, **arch)!r})), head=dict(in_channels=64))\n")
    return path


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = _load_tool('export')


def _checkpoint(config, path, cfg_options=None, shape=(64, 64)):
    """A training-form checkpoint with well-conditioned random BN stats."""
    cfg = load_config(config, cfg_options)
    model = build_model(cfg)
    randomize_norm_stats_(model, torch.randn(2, 3, *shape) if not any(
        'SyncBatchNorm' in type(m).__name__ for m in model.modules())
        else None)
    atomic_save(dict(state_dict=model.state_dict(),
                     meta=dict(dataset_meta=dict(classes=None))), path)
    return model


def _run_tool(argv, capsys):
    proc = call_tool(EXPORT.__file__, *argv, capsys=capsys)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize('config,arch,shape', [
    (A0, None, (64, 64)),
    (B1G2, dict(groups=2), (64, 64)),
    (D2SE, dict(se_ratio=4), (64, 48)),  # SE, non-square
])
def test_classifier_export_is_verified(config, arch, shape, tmp_path,
                                       capsys):
    if arch is not None:
        config = _tiny(config, tmp_path, **arch)
    ckpt, out = str(tmp_path / 'm.pth'), str(tmp_path / 'm.onnx')
    model = _checkpoint(config, ckpt, None, shape)
    argv = [config, ckpt, out, '--shape', *map(str, shape), '--verify']
    code, stdout, err = _run_tool(argv, capsys)
    assert code == 0, err
    assert 'verified: max |d|' in stdout
    rel = float(stdout.split('= ')[-1].split(' x max')[0])
    assert rel <= TOL
    # the graph is the deploy form: no BatchNormalization node is left
    import onnx
    graph = onnx.load(out).graph
    assert not [n for n in graph.node if n.op_type == 'BatchNormalization']
    # an image as a user has it: float32, 0-255, BGR -> the trained model
    session = open_session(out)
    meta = session.metadata
    assert meta['channel_order'] == 'BGR' and meta['task'] == 'classifier'
    assert meta['input_size'] == f'{shape[0]}x{shape[1]}'
    assert len(json.loads(meta['class_names'])) == 1000  # ImageNet's
    images = image_like((1, 3, *shape), seed=3)
    scores, = session(images.numpy())
    model.eval()
    with torch.no_grad():  # the training form, through mm's preprocessor
        expected = reference_outputs(model, images)
    (abs_err, rel_err), = relative_errors(expected, torch.from_numpy(scores))
    assert rel_err <= TOL, (abs_err, rel_err)


def test_segmentor_from_training_and_deploy_checkpoints(tmp_path, capsys):
    ckpt = str(tmp_path / 'psp.pth')
    model = _checkpoint(PSP, ckpt)
    out = str(tmp_path / 'psp.onnx')
    # 64x64, the config's crop: the 1/8 feature map (8x8) is not a multiple
    # of the pool scales 3 and 6, which torch's own export of adaptive
    # pooling refused (see repvgg_mm/runtime/onnx_export.py)
    code, stdout, err = _run_tool([PSP, ckpt, out, '--verify'], capsys)
    assert code == 0, err
    session = open_session(out)
    assert session.metadata['input_size'] == '64x64'
    names = json.loads(session.metadata['class_names'])
    assert names[:2] == ['road', 'sidewalk']
    images = image_like((1, 3, 64, 64), seed=1)
    logits, = session(images.numpy())
    assert logits.shape == (1, 19, 64, 64)  # at the input resolution
    with torch.no_grad():
        expected = reference_outputs(model.eval(), images)
    assert relative_errors(expected, torch.from_numpy(logits))[0][1] <= TOL
    # a deploy-form checkpoint (tools/convert_deploy.py) exports the same
    deploy_ckpt = str(tmp_path / 'psp_deploy.pth')
    convert_checkpoint(PSP, ckpt, deploy_ckpt)
    result = export_model(PSP, deploy_ckpt, str(tmp_path / 'd.onnx'),
                          verify=True)
    assert result.num_fused_blocks == 0 and result.max_rel_err <= TOL
    again, = open_session(result.paths[0])(images.numpy())
    np.testing.assert_allclose(again, logits, rtol=0, atol=1e-4 * np.abs(
        logits).max())


@pytest.mark.parametrize('size', [(8, 8), (90, 90), (7, 13), (3, 5)])
def test_matrix_adaptive_pooling_is_torchs(size):
    from repvgg_mm.runtime.onnx_export import (MatrixAdaptiveAvgPool2d,
                                               exportable_adaptive_pooling)
    x = torch.randn(2, 4, *size)
    for bins in (1, 2, 3, 6, (2, 5), (None, 3)):
        expected = torch.nn.functional.adaptive_avg_pool2d(x, bins)
        pooled = MatrixAdaptiveAvgPool2d(bins)(x)
        assert pooled.shape == expected.shape
        assert float((pooled - expected).abs().max()) <= 1e-6
    # swapped during the export only; global pooling is left alone
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(6),
                              torch.nn.AdaptiveAvgPool2d(1))
    with exportable_adaptive_pooling(net) as swapped:
        assert swapped == 1
        assert isinstance(net[0], MatrixAdaptiveAvgPool2d)
        assert isinstance(net[1], torch.nn.AdaptiveAvgPool2d)
    assert type(net[0]) is torch.nn.AdaptiveAvgPool2d


@pytest.mark.parametrize('task', ['classifier', 'segmentor'])
def test_dynamic_batch_and_size(task, tmp_path):
    # free N, H, W; a segmentor's pyramid pooling bins follow the input size
    # inside the graph
    ckpt, out = str(tmp_path / 'm.pth'), str(tmp_path / 'm.onnx')
    config = _tiny(A0, tmp_path) if task == 'classifier' else PSP
    model = _checkpoint(config, ckpt)
    result = export_model(config, ckpt, out, dynamic=True, verify=True,
                          shape=(64, 64))
    assert result.dynamic and result.max_rel_err <= TOL
    session = open_session(out)
    deployed = switch_to_deploy(model.eval())
    for batch, (h, w) in ((1, (64, 128)), (3, (56, 72))):
        images = image_like((batch, 3, h, w), seed=batch)
        outputs, = session(images.numpy())
        assert outputs.shape == ((batch, 1000) if task == 'classifier' else
                                 (batch, 19, h, w))
        with torch.no_grad():
            expected = reference_outputs(deployed, images)
        assert relative_errors(expected,
                               torch.from_numpy(outputs))[0][1] <= TOL


def test_resnet_baseline_exports(tmp_path):
    config = resolve_config_path('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    ckpt, out = str(tmp_path / 'r18.pth'), str(tmp_path / 'r18.onnx')
    _checkpoint(config, ckpt)
    result = export_model(config, ckpt, out, shape=(64, 64), verify=True)
    assert result.num_fused_blocks == 0 and result.max_rel_err <= TOL
    assert open_session(out).metadata['arch'] == 'ResNet-18'


def test_openvino_ir(tmp_path, capsys):
    ckpt, out = str(tmp_path / 'a0.pth'), str(tmp_path / 'ir' / 'a0.xml')
    config = _tiny(A0, tmp_path)
    model = _checkpoint(config, ckpt)
    code, stdout, err = _run_tool(
        [config, ckpt, out, '--shape', '64', '64', '--batch', '2',
         '--verify'], capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / 'ir')) == ['a0.bin', 'a0.xml']
    session = open_session(out)
    assert session.backend == 'openvino'
    assert session.metadata['task'] == 'classifier'
    images = image_like((2, 3, 64, 64), seed=5)
    with torch.no_grad():
        expected = reference_outputs(model.eval(), images)
    scores, = session(images.numpy())
    assert relative_errors(expected, torch.from_numpy(scores))[0][1] <= TOL
    if supports_bf16():  # bf16 inference: close, not exact
        bf16, = open_session(out, precision='bf16')(images.numpy())
        assert relative_errors(expected, torch.from_numpy(bf16))[0][1] < 5e-2
    else:
        with pytest.raises(Exception, match='no native bf16'):
            open_session(out, precision='bf16')


def test_exporter_failure_names_the_operator(tmp_path, monkeypatch, capsys):
    from mmpretrain.models.necks import GlobalAveragePooling
    ckpt, out = str(tmp_path / 'a0.pth'), str(tmp_path / 'a0.onnx')
    config = _tiny(A0, tmp_path)
    _checkpoint(config, ckpt)
    original = GlobalAveragePooling.forward
    monkeypatch.setattr(GlobalAveragePooling, 'forward', lambda self, x: (
        torch.special.bessel_j0(original(self, x)[-1]), ))
    code, _, err = _run_tool([config, ckpt, out, '--shape', '32', '32'],
                             capsys)
    assert code == 2
    assert 'ONNX exporter failed' in err
    assert 'operator: aten::special_bessel_j0' in err
    assert sorted(os.listdir(tmp_path)) == ['a0.pth', osp.basename(config)]


@pytest.mark.parametrize('out,extra,message', [
    ('m.pt', [], 'must end in .onnx'),
    ('m.onnx', ['--format', 'openvino'], 'does not match'),
    ('m.onnx', ['--cfg-options', 'model.head.num_classes=10'],
     'do not match the model'),
    ('m.onnx', ['--cfg-options', 'model.neck=None'], 'cannot take a 32x32'),
])
def test_bad_input_is_one_clear_error(out, extra, message, tmp_path, capsys):
    ckpt = str(tmp_path / 'a0.pth')
    config = _tiny(A0, tmp_path)
    _checkpoint(config, ckpt)
    code, _, err = _run_tool([config, ckpt, str(tmp_path / out), '--shape',
                              '32', '32'] + extra, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith('error')]
    assert len(errors) == 1 and message in errors[0], err
    # nothing written
    assert sorted(os.listdir(tmp_path)) == ['a0.pth', osp.basename(config)]


def test_unwritable_out_is_checked_before_any_work(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    code, _, err = _run_tool([A0, str(tmp_path / 'missing.pth'),
                              str(blocker / 'sub' / 'm.onnx')], capsys)
    assert code == 2 and 'is a file, not a folder' in err, err


DET_CFG = """
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='RepVGGMM', out_indices=(1, 2, 3), arch=dict(
        num_blocks=[1, 2, 1, 1], width_factor=[0.125] * 4)),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16,
              start_level=0, add_extra_convs='on_input', num_outs=3),
    bbox_head=dict(
        type='RetinaHead', num_classes=3, in_channels=16, stacked_convs=1,
        feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True),
        loss_bbox=dict(type='L1Loss')),
    test_cfg=dict(nms_pre=100, score_thr=0.05, max_per_img=10,
                  nms=dict(type='nms', iou_threshold=0.5)))
"""


def test_detector_exports_raw_head_outputs(tmp_path):
    config = tmp_path / 'det.py'
    config.write_text(DET_CFG)
    ckpt, out = str(tmp_path / 'det.pth'), str(tmp_path / 'det.onnx')
    model = _checkpoint(str(config), ckpt)
    result = export_model(str(config), ckpt, out, shape=(64, 64),
                          verify=True)
    assert result.task == 'detector' and result.max_rel_err <= TOL
    session = open_session(out)
    assert 'NMS are not in the graph' in session.metadata['output']
    images = image_like((1, 3, 64, 64), seed=2)
    got = [torch.from_numpy(o) for o in session(images.numpy())]
    with torch.no_grad():  # (cls scores, box deltas) of 3 levels
        expected = reference_outputs(switch_to_deploy(model.eval()), images)
    assert len(got) == 6
    assert max(rel for _, rel in relative_errors(expected, got)) <= TOL


@pytest.mark.parametrize('job,kwargs,message', [
    ('export', dict(batch=0), '`batch` must be a positive whole number, got '
     '0.'),
    ('export', dict(batch=1.5), '`batch` must be a positive whole number, '
     'got 1.5.'),
    ('export', dict(shape=(64, 0)), '`shape` takes H W (positive), got [64, '
     '0]'),
    ('convert', dict(shape=(64.5, 64)), '`shape` takes H W (positive), got '
     '[64.5, 64]'),
])
def test_numbers_are_checked_alike_before_any_work(tmp_path, job, kwargs,
                                                   message):
    """One check per kind of number for every job: a float batch or shape
    is refused with the same message, and nothing is written."""
    from repvgg_mm.errors import ConfigError
    api = export_model if job == 'export' else convert_checkpoint
    out = tmp_path / ('m.onnx' if job == 'export' else 'd.pth')
    with pytest.raises(ConfigError) as info:
        api(PSP, str(tmp_path / 'none.pth'), str(out), **kwargs)
    assert str(info.value) == message
    assert os.listdir(tmp_path) == []
