"""Pretrained weights of any layout, straight into any config (issue 17).

Checkpoints are written here in each layout (official code's keys, timm's
and mmpretrain's models, this project's training / deploy / QARepVGG
forms), with random weights and BN statistics so a wrong load shows. They
are loaded through ``init_cfg`` (with and without ``prefix``), through
mmengine's ``load_checkpoint`` (what ``Runner.load_from`` runs), a real
Runner, and the tools' loader; outputs must equal the writer's.
"""
import logging
import os
import os.path as osp
import subprocess
import sys
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest
import timm
import torch
from conftest import ROOT
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_checkpoint
from test_convert_weights import (MMPRETRAIN_TINY, NUM_CLASSES, TINY,
                                  OfficialRepVGG, X, mmpretrain_model,
                                  official_deploy, our_classifier, randomize_,
                                  run_tool, timm_tiny_se)

from repvgg_mm import RepVGGMM, switch_to_deploy
from repvgg_mm.apis.train import training_config
from repvgg_mm.engine.checkpoint_loader import check_load_from
from repvgg_mm.errors import CheckpointError
from repvgg_mm.io.weights import load_weights
from repvgg_mm.utils.verify import relative_errors

EXACT = 1e-6  # fp32, relative to the largest output
QA = dict(type='QARepVGGBlock')


def max_rel(a, b):
    return max(rel for _, rel in relative_errors(a, b))


def capture(logger, records):
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    return handler


@pytest.fixture
def log_lines():
    """Messages of mmengine's current logger during the test."""
    records = []
    logger = MMLogger.get_current_instance()
    handler = capture(logger, records)
    yield records
    logger.removeHandler(handler)


def loaded_lines(records):
    return [r for r in records if r.startswith('loaded "')]


# ----------------------------------------------------------------------
# sources: (state dict as the writer saves it, backbone features, arch,
# block_cfg, deploy form?)
def _official(deploy=False):
    model = randomize_(OfficialRepVGG(TINY, NUM_CLASSES), X)
    if deploy:
        model = official_deploy(model, TINY)
    with torch.no_grad():
        feats = X
        for i in range(5):
            feats = getattr(model, f'stage{i}')(feats)
    return model, feats


def source(kind):
    """``(checkpoint object, backbone features, block_cfg, deploy)``."""
    if kind in ('official', 'official_deploy'):
        model, feats = _official(kind == 'official_deploy')
        wrapped = {f'module.{k}': v for k, v in model.state_dict().items()}
        if kind == 'official':  # bare state dict
            return model.state_dict(), feats, None, False
        return {'model': wrapped}, feats, None, True  # wrapped, module.
    if kind == 'mmpretrain_se':
        model = randomize_(mmpretrain_model(MMPRETRAIN_TINY), X)
        with torch.no_grad():
            feats = model.backbone(X)[-1]
        return {'state_dict': model.state_dict(), 'meta': {}}, feats, None, \
            False
    if kind == 'timm':
        model = randomize_(timm_tiny_se(), X)
        with torch.no_grad():
            feats = model.forward_features(X)
        return model.state_dict(), feats, None, False
    block_cfg = QA if kind == 'qarepvgg' else None
    model = RepVGGMM(TINY, **({'block_cfg': QA} if block_cfg else {}))
    model = randomize_(model, X)
    if kind == 'project_deploy':
        model = switch_to_deploy(model)
    with torch.no_grad():
        feats = model(X)[-1]
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    return {'state_dict': state}, feats, block_cfg, kind == 'project_deploy'


LAYOUTS = {
    'official': 'the official RepVGG layout, training form',
    'official_deploy': 'the official RepVGG layout, deploy form',
    'mmpretrain_se': "mmpretrain 1.2's layout, training form",
    'timm': "timm's layout, training form",
    'project': "this project's layout, training form",
    'project_deploy': "this project's layout, deploy form",
    'qarepvgg': "this project's layout, training form",
}


def backbone(deploy=False, block_cfg=None, **kwargs):
    extra = {'block_cfg': block_cfg} if block_cfg else {}
    return RepVGGMM(TINY, deploy=deploy, **extra, **kwargs)


# ----------------------------------------------------------------------
@pytest.mark.parametrize('kind', list(LAYOUTS))
def test_every_layout_through_init_cfg(kind, tmp_path, log_lines):
    checkpoint, ref, block_cfg, deploy = source(kind)
    path = str(tmp_path / f'{kind}.pth')
    torch.save(checkpoint, path)
    # prefix='backbone.' as OpenMMLab configs write it, also for files
    # without that prefix (official, timm)
    model = backbone(deploy, block_cfg,
                     init_cfg=dict(type='Pretrained', checkpoint=path,
                                   prefix='backbone.'))
    model.init_weights()
    with torch.no_grad():
        assert max_rel(ref, model.eval()(X)[-1]) <= EXACT
    line, = loaded_lines(log_lines)
    assert f'loaded "{path}" into the RepVGGMM backbone: ' in line
    assert LAYOUTS[kind] in line
    assert f'{len(model.blocks())} blocks' in line
    if kind == 'qarepvgg':
        assert 'QARepVGG blocks' in line
    if kind in ('official', 'official_deploy', 'timm', 'mmpretrain_se'):
        head = 'linear.*' if kind.startswith('official') else 'head.fc.*'
        assert (f'not loaded: the classifier head {head} ({NUM_CLASSES} '
                f'classes), as init_cfg loads the backbone only') in line


def test_training_file_without_prefix_fuses_into_deploy_backbone(
        tmp_path, log_lines):
    checkpoint, ref, _, _ = source('official')
    path = str(tmp_path / 'RepVGG-tiny-train.pth')
    torch.save(checkpoint, path)
    model = backbone(deploy=True,
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    with torch.no_grad():
        assert max_rel(ref, model.eval()(X)[-1]) <= 1e-5  # fused: rounding
    assert 'training form, fused into the deploy model' in \
        loaded_lines(log_lines)[0]


@pytest.mark.parametrize('kind', ['official', 'timm', 'mmpretrain_se'])
def test_load_from_gives_the_writers_logits(kind, tmp_path, log_lines):
    """mmengine's load_checkpoint (Runner.load_from's path), non-strict."""
    checkpoint, _, _, _ = source(kind)
    path = str(tmp_path / f'{kind}.pth')
    torch.save(checkpoint, path)
    classifier = our_classifier(TINY)
    load_checkpoint(classifier, path, map_location='cpu', strict=False,
                    logger='current')
    reference = our_classifier(TINY)
    load_weights(reference, path)  # the tools' strict loader
    with torch.no_grad():
        assert max_rel(reference(X, mode='tensor'),
                       classifier(X, mode='tensor')) <= EXACT
    assert len(loaded_lines(log_lines)) == 2
    assert not any('unexpected key' in r for r in log_lines)


def test_official_logits_through_the_tools_loader(tmp_path):
    model, _ = _official()
    path = str(tmp_path / 'RepVGG-tiny-train.pth')
    torch.save({'module.' + k: v for k, v in model.state_dict().items()},
               path)
    classifier = our_classifier(TINY)
    load_weights(classifier, path)
    with torch.no_grad():
        assert max_rel(model(X), classifier(X, mode='tensor')) <= EXACT


def test_timm_repvgg_a0_into_a_runner_with_another_head(tmp_path):
    """A real Runner's load_from; a head of another class count is the
    fine-tuning case: named in the log line, the backbone still exact."""
    from mmengine.runner import Runner
    model = randomize_(timm.create_model('repvgg_a0', pretrained=False), X)
    path = str(tmp_path / 'repvgg_a0.pth')
    torch.save(model.state_dict(), path)
    runner = Runner(
        model=dict(type='ImageClassifier',
                   backbone=dict(type='RepVGGMM', arch='a0'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=3,
                             in_channels=1280)),
        work_dir=str(tmp_path / 'work'), load_from=path,
        default_scope='mmpretrain')
    log_lines = []
    handler = capture(runner.logger, log_lines)
    try:
        runner.load_or_resume()
    finally:
        runner.logger.removeHandler(handler)
    with torch.no_grad():
        ref = model.forward_features(X)
        ours = runner.model.eval().backbone(X)[-1]
    assert max_rel(ref, ours) <= EXACT
    line, = loaded_lines(log_lines)
    assert "timm's layout, training form, RepVGG-A0, 22 blocks" in line
    assert ("the classifier head head.fc.* (1000 classes) goes to the "
            "model's head.fc; a head of another class count keeps its init "
            "(fine-tuning)") in line


# ----------------------------------------------------------------------
# failures: an error naming the problem, never a silently random backbone
def test_other_arch_is_an_error_naming_both(tmp_path):
    checkpoint, _, _, _ = source('official')
    path = str(tmp_path / 'tiny.pth')
    torch.save(checkpoint, path)
    model = RepVGGMM('a0', init_cfg=dict(type='Pretrained', checkpoint=path,
                                         prefix='backbone.'))
    message = (r'the weights in ".*tiny.pth" are RepVGG arch .*groups.: 2.*'
               r'but the RepVGGMM backbone is RepVGG-A0')
    with pytest.raises(CheckpointError, match=message):
        model.init_weights()
    with pytest.raises(CheckpointError, match='backbone "backbone" is '
                       'RepVGG-A0'):
        load_checkpoint(our_classifier('a0'), path, strict=False)
    with pytest.raises(CheckpointError, match='RepVGG-A0'):
        load_weights(our_classifier('a0'), path)


def test_unloaded_backbone_tensors_are_named(tmp_path):
    checkpoint, _, _, _ = source('project')
    del checkpoint['state_dict']['backbone.stage_2.1.se.expand.bias']
    path = str(tmp_path / 'partial.pth')
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError,
                       match=r'would keep its initial weights: .*1 missing '
                       r'keys: backbone\.stage_2\.1\.se\.expand\.bias'):
        load_checkpoint(our_classifier(TINY), path, strict=False)


def test_a_checkpoint_without_repvgg_weights_is_an_error(tmp_path):
    path = str(tmp_path / 'resnet.pth')
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
               path)
    with pytest.raises(CheckpointError, match=r'holds no RepVGG weights of '
                       r'a known layout .*official RepVGG code'):
        backbone(init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='backbone.')).init_weights()
    with pytest.raises(CheckpointError, match=r'backbone "backbone" would '
                       r'keep its initial weights: .* holds no RepVGG '
                       r'backbone weights under "backbone."'):
        load_checkpoint(our_classifier(TINY), path, strict=False)


def test_a_prefix_that_is_not_there_is_named(tmp_path):
    checkpoint, _, _, _ = source('project')
    path = str(tmp_path / 'cls.pth')
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r'init_cfg prefix "encoder.": '
                       r"no key .* under 'backbone.'"):
        backbone(init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='encoder.')).init_weights()


def test_deploy_file_into_training_backbone_is_refused(tmp_path):
    checkpoint, _, _, _ = source('official_deploy')
    path = str(tmp_path / 'RepVGG-tiny-deploy.pth')
    torch.save(checkpoint, path)
    with pytest.raises(RuntimeError, match='deploy-form .* deploy=True'):
        backbone(init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='backbone.')).init_weights()


# ----------------------------------------------------------------------
# remote weights: a local server on 127.0.0.1 only
def test_http_checkpoint_is_downloaded_cached_and_converted(
        tmp_path, monkeypatch, log_lines):
    checkpoint, ref, _, _ = source('official')
    served = tmp_path / 'served'
    served.mkdir()
    torch.save(checkpoint, served / 'RepVGG-tiny-train.pth')
    hub = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub))
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = HTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = (f'http://127.0.0.1:{server.server_address[1]}/'
               f'RepVGG-tiny-train.pth')
        model = backbone(init_cfg=dict(type='Pretrained', checkpoint=url,
                                       prefix='backbone.'))
        model.init_weights()
    finally:
        server.shutdown()
        server.server_close()
    with torch.no_grad():
        assert max_rel(ref, model.eval()(X)[-1]) <= EXACT
    assert os.listdir(hub / 'checkpoints') == ['RepVGG-tiny-train.pth']
    assert f'loaded "{url}"' in loaded_lines(log_lines)[0]


# ----------------------------------------------------------------------
# a file that would run code: refused the same way everywhere, nothing runs
class _Marker:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


REFUSAL = (r'holds Python objects that safe loading .* refuses: it imports '
           r'io\.open\. Unpickling them could run arbitrary code, so '
           r'the file was not loaded and nothing ran')


@pytest.mark.slow
def test_code_running_pickle_is_refused_everywhere(tmp_path):
    marker = tmp_path / 'ran'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'x': _Marker(str(marker))}}, path)
    with pytest.raises(CheckpointError, match=REFUSAL):
        backbone(init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='backbone.')).init_weights()
    with pytest.raises(CheckpointError, match=REFUSAL):
        load_checkpoint(our_classifier(TINY), path)  # load_from's read
    code, log = run_tool(path, tmp_path / 'out.pth', '--format', 'official',
                         '--arch', 'a0')
    assert code == 2, log
    assert 'nothing ran' in log and 'Traceback' not in log
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ['evil.pth']
    assert not osp.exists(tmp_path / 'out.pth')


# ----------------------------------------------------------------------
# a tool with an official file, as published: no conversion first
@pytest.mark.slow
def test_convert_deploy_takes_an_official_file(tmp_path):
    model, _ = _official()
    official = str(tmp_path / 'RepVGG-tiny-train.pth')
    torch.save(model.state_dict(), official)
    config = tmp_path / 'tiny.py'
    config.write_text(
        "default_scope = 'mmpretrain'\n"
        "custom_imports = dict(imports=['repvgg_mm'])\n"
        f"model = dict(type='ImageClassifier', backbone=dict("
        f"type='RepVGGMM', arch={TINY!r}), "
        "neck=dict(type='GlobalAveragePooling'), "
        f"head=dict(type='LinearClsHead', num_classes={NUM_CLASSES}, "
        "in_channels=256))\n")
    out = tmp_path / 'deploy.pth'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'convert_deploy.py'),
         str(config), official, str(out), '--verify', '--shape', '32', '32'],
        capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert 'the official RepVGG layout, training form' in log
    deployed = our_classifier(TINY, deploy=True)
    load_weights(deployed, str(out))
    with torch.no_grad():
        assert max_rel(model(X), deployed(X, mode='tensor')) <= 1e-5


def test_train_tool_checks_load_from_before_any_work_dir(tmp_path):
    """tools/train.py's load_from: strict for the backbone, checked on a
    meta-device model before the Runner; a fitting file passes quietly."""
    config = tmp_path / 'a0.py'
    config.write_text(
        "default_scope = 'mmpretrain'\n"
        "custom_imports = dict(imports=['repvgg_mm'])\n"
        "model = dict(type='ImageClassifier', backbone=dict("
        "type='RepVGGMM', arch='a0'), "
        "neck=dict(type='GlobalAveragePooling'), "
        "head=dict(type='LinearClsHead', num_classes=3, in_channels=1280))\n"
        "train_dataloader = dict(dataset=dict(data_root='nowhere'))\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n"
        "train_cfg = dict(by_epoch=True, max_epochs=1)\n")
    checkpoint, _, _, _ = source('official')  # TINY, not A0
    other = str(tmp_path / 'RepVGG-tiny-train.pth')
    torch.save(checkpoint, other)
    work = tmp_path / 'work'
    with pytest.raises(CheckpointError, match='RepVGG-A0'):
        training_config(str(config), cfg_options=dict(load_from=other),
                        work_dir=str(work))
    assert not work.exists()
    a0 = str(tmp_path / 'repvgg_a0.pth')
    torch.save(timm.create_model('repvgg_a0').state_dict(), a0)
    check_load_from(Config.fromfile(str(config)), a0)  # head differs: fine
