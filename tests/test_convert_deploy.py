"""tools/convert_deploy.py end to end, on tiny configs.

Most cases run the tool as a subprocess; three run its ``main`` in-process
(the same code without another Python start-up, which costs ~10 s on the
shared CPUs). Every failure case checks: exit status 2, the exact cause in
the message, and that nothing (not even a temporary file) was written.
"""
import os
import os.path as osp
import random
from argparse import Namespace

import pytest
import torch
from conftest import REL_TOL, ROOT, call_tool
from conftest import run_tool as run_conftest_tool
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import count_repvgg_blocks
from repvgg_mm.converters.config_model import build_model, input_size
from repvgg_mm.converters.deploy_form import TRAINING_STATE_KEYS
from repvgg_mm.io.checkpoint import CheckpointError, load_checkpoint_file
from repvgg_mm.utils.verify import forward_tensor, relative_errors

TOOL = osp.join(ROOT, 'tools', 'convert_deploy.py')

# identity branches (stage_1.1, stage_2.1) and grouped layers (2 and 4)
TINY_ARCH = ("dict(num_blocks=[2, 2, 1, 1], width_factor=[0.125] * 4, "
             "groups=2)")

CLASSIFIER_CFG = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepVGGMM', arch={TINY_ARCH}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=40, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=1, dataset=dict(type='CustomDataset', data_root='nowhere',
                               pipeline=test_pipeline))
"""

# mmseg EncoderDecoder, SyncBN everywhere, output stride 8, non-square crop
SEGMENTOR_CFG = f"""
default_scope = 'mmseg'
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
crop_size = (32, 48)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=crop_size,
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(type='RepVGGMM', arch={TINY_ARCH}, out_indices=(2, 3),
                  strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                  norm_cfg=norm_cfg),
    decode_head=dict(type='FCNHead', in_channels=64, in_index=1, channels=16,
                     num_convs=1, concat_input=False, num_classes=5,
                     norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss')),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""

RESNET_CFG = """
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
"""


def run_tool(*args):
    """The tool's ``main`` in this process (no Python start-up on the shared
    CPUs): exit status and stdout + stderr."""
    proc = call_tool(TOOL, *args)
    return proc.returncode, proc.stdout + proc.stderr


def run_tool_in_process(*args):
    """The same ``main`` in this process (saves a Python start-up on the
    shared CPUs): exit status and stderr."""
    proc = call_tool(TOOL, *args)
    return proc.returncode, proc.stderr


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def trained_checkpoint(cfg_path, out_path, seed=0, **extra_meta):
    """A training checkpoint as mmengine writes it, random weights and BN
    statistics."""
    cfg = Config.fromfile(cfg_path)
    torch.manual_seed(seed)
    model = build_model(cfg)
    randomize_norm_stats_(model, seed=seed)
    history = HistoryBuffer()
    history.update(0.5)
    checkpoint = dict(
        meta=dict(epoch=3, iter=30, seed=seed, **extra_meta),
        state_dict=model.state_dict(),
        optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
        param_schedulers=[dict(last_epoch=3)],
        message_hub=dict(log_scalars=dict(loss=history)),
        ema_state_dict={'module.x': torch.zeros(1)})
    torch.save(checkpoint, out_path)
    return model.eval(), str(out_path)


def outputs_equal_after_reload(model, deploy_cfg_path, deploy_ckpt_path):
    """Build the written deploy config, load the written checkpoint strictly
    and compare with the training-form model."""
    cfg = Config.fromfile(deploy_cfg_path)
    deployed = build_model(cfg)
    checkpoint = load_checkpoint_file(deploy_ckpt_path)
    deployed.load_state_dict(checkpoint['state_dict'], strict=True)
    assert count_repvgg_blocks(deployed, deployed=True) == count_repvgg_blocks(
        deployed) == 7
    (height, width), _ = input_size(cfg)
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        errors = relative_errors(forward_tensor(model, x),
                                 forward_tensor(deployed.eval(), x))
    return max(rel for _, rel in errors), checkpoint


def assert_nothing_written(folder, expected):
    assert sorted(os.listdir(folder)) == sorted(expected)


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    """A tiny classifier checkpoint, converted once with --verify."""
    folder = tmp_path_factory.mktemp('cls')
    cfg = write(folder / 'tiny_cls.py', CLASSIFIER_CFG)
    model, ckpt = trained_checkpoint(cfg, folder / 'epoch_3.pth')
    out = folder / 'deployed' / 'deploy.pth'
    proc = run_conftest_tool(TOOL, cfg, ckpt, out, '--verify')  # as users do
    code, log = proc.returncode, proc.stdout + proc.stderr
    return Namespace(folder=folder, cfg=cfg, ckpt=ckpt, model=model, out=out,
                     code=code, log=log)


def test_classifier_converts_verifies_and_reloads(classifier):
    assert classifier.code == 0, classifier.log
    log = classifier.log
    assert 'converted 7 RepVGG blocks' in log
    assert ('verifying on a random input of shape (1, 3, 32, 32) (size from '
            'test_dataloader pipeline)') in log
    assert 'verify: OK' in log
    folder = classifier.out.parent
    assert sorted(os.listdir(folder)) == ['deploy.pth', 'deploy.py']
    rel, checkpoint = outputs_equal_after_reload(
        classifier.model, folder / 'deploy.py', classifier.out)
    assert rel <= REL_TOL
    # meta kept, training state dropped
    assert checkpoint['meta']['epoch'] == 3
    assert checkpoint['meta']['repvgg_mm']['deploy'] is True
    assert not set(TRAINING_STATE_KEYS) & set(checkpoint)
    assert not any('branch_3x3' in k for k in checkpoint['state_dict'])
    # the deploy config is the original with backbone.deploy=True
    original, deployed = (Config.fromfile(p)
                          for p in (classifier.cfg, folder / 'deploy.py'))
    assert deployed.model.backbone.pop('deploy') is True
    assert deployed.model.to_dict() == original.model.to_dict()


def test_syncbn_segmentor_converts_on_cpu(tmp_path):
    cfg = write(tmp_path / 'tiny_seg.py', SEGMENTOR_CFG)
    model, ckpt = trained_checkpoint(cfg, tmp_path / 'seg.pth', seed=1)
    assert isinstance(model.backbone.stem.branch_3x3.norm,
                      torch.nn.SyncBatchNorm)
    out_cfg = tmp_path / 'out' / 'seg_deploy_cfg.py'
    code, log = run_tool(cfg, ckpt, tmp_path / 'out' / 'seg_deploy.pth',
                         '--verify', '--out-config', out_cfg)
    assert code == 0, log
    assert ('verifying on a random input of shape (1, 3, 32, 48) (size from '
            'model.data_preprocessor.size)') in log
    rel, _ = outputs_equal_after_reload(model, out_cfg,
                                        tmp_path / 'out' / 'seg_deploy.pth')
    assert rel <= REL_TOL


def test_verify_failure_writes_nothing(classifier, tmp_path):
    # float32 round-off is never exactly 0, so tolerance 0 must fail
    code, log = run_tool(classifier.cfg, classifier.ckpt, tmp_path / 'o.pth',
                         '--verify', '--tolerance', '0', '--shape', '24', '16')
    assert code == 2, log
    assert 'shape (1, 3, 24, 16) (size from `shape`)' in log
    assert 'beyond the tolerance 0. Nothing was written.' in log
    assert_nothing_written(tmp_path, [])


def test_missing_corrupt_and_truncated_checkpoints(classifier, tmp_path):
    truncated = tmp_path / 'truncated.pth'
    with open(classifier.ckpt, 'rb') as f:
        truncated.write_bytes(f.read()[:4000])
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(random.Random(0).randbytes(3000))
    cases = [(tmp_path / 'missing.pth', 'does not exist', run_tool),
             (truncated, 'is corrupt or truncated', run_tool),
             (corrupt, 'is corrupt or truncated', run_tool_in_process)]
    for path, message, run in cases:
        code, log = run(classifier.cfg, path, tmp_path / 'out.pth')
        assert code == 2, log
        assert f'error: checkpoint "{path}" {message}' in log
        assert 'Traceback' not in log
    assert_nothing_written(tmp_path, ['truncated.pth', 'corrupt.pth'])


def test_checkpoint_not_matching_the_config(classifier, tmp_path):
    code, log = run_tool(classifier.cfg, classifier.ckpt, tmp_path / 'o.pth',
                         '--cfg-options',
                         'model.backbone.arch.num_blocks=[2,2,2,1]')
    assert code == 2, log
    assert ('do not match the model built from the config (17 missing keys: '
            'backbone.stage_3.1.branch_3x3.conv.weight') in log
    # stage_4.0 is layer 7 now, no longer grouped
    assert ('2 shape mismatches (weights vs model): '
            'backbone.stage_4.0.branch_3x3.conv.weight (64, 16, 3, 3) vs '
            '(64, 32, 3, 3)') in log
    assert_nothing_written(tmp_path, [])


def test_model_without_repvgg_block(classifier, tmp_path):
    cfg = write(tmp_path / 'resnet.py', RESNET_CFG)
    code, log = run_tool(cfg, classifier.ckpt, tmp_path / 'o.pth')
    assert code == 2, log
    assert 'holds no RepVGG block, so there is nothing to convert' in log
    assert_nothing_written(tmp_path, ['resnet.py'])


def test_deploy_checkpoint_is_refused_unchanged(classifier, tmp_path):
    before = classifier.out.read_bytes()
    code, log = run_tool(classifier.cfg, classifier.out, tmp_path / 'o.pth')
    assert code == 2, log
    assert 'is already in deploy form' in log
    assert classifier.out.read_bytes() == before
    assert_nothing_written(tmp_path, [])


def test_refuses_to_overwrite_its_input(classifier):
    before = open(classifier.ckpt, 'rb').read()
    code, log = run_tool_in_process(classifier.cfg, classifier.ckpt,
                                    classifier.ckpt)
    assert code == 2, log
    assert ('would overwrite the input CHECKPOINT') in log
    assert 'a tool never overwrites its input' in log
    assert open(classifier.ckpt, 'rb').read() == before


def test_unsafe_objects_need_unsafe_load(tmp_path):
    cfg = write(tmp_path / 'tiny_cls.py', CLASSIFIER_CFG)
    _, ckpt = trained_checkpoint(cfg, tmp_path / 'pickled.pth',
                                 args=Namespace(lr=0.1))
    code, log = run_tool(cfg, ckpt, tmp_path / 'o.pth')
    assert code == 2, log
    assert ('holds Python objects that safe loading (torch.load with '
            'weights_only=True) refuses') in log
    assert 'argparse.Namespace' in log
    assert 'you trust the source of this file, pass --unsafe-load' in log
    assert 'corrupt or truncated' not in log
    assert_nothing_written(tmp_path, ['tiny_cls.py', 'pickled.pth'])
    code, log = run_tool_in_process(cfg, ckpt, tmp_path / 'o.pth',
                                    '--unsafe-load')
    assert code == 0, log
    assert (tmp_path / 'o.pth').is_file()


@pytest.mark.parametrize('seed', range(40))
def test_any_garbage_is_reported_as_corrupt(tmp_path, seed):
    """Random bytes fail inside torch's unpickler in many ways (EOFError,
    UnpicklingError, IndexError, ...): every one is a CheckpointError."""
    path = tmp_path / 'garbage.pth'
    rng = random.Random(seed)
    path.write_bytes(rng.randbytes(rng.randint(1, 5000)))
    with pytest.raises(CheckpointError, match='is corrupt or truncated'):
        load_checkpoint_file(str(path))
