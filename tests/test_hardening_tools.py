"""Issue 13 through the real tools (subprocesses): exact resume with random
augmentation, bad checkpoints, ``--unsafe-load``.

The model and data are those of configs/demo/repvgg-tiny_digits.py (its
``RandomCrop`` and one persistent dataloader worker), on 128 of the digits
written at 8x8, batch 32: 4 iterations per epoch.
"""
import argparse
import os
import os.path as osp
import sys

import pytest
import torch
from conftest import ROOT, assert_succeeded, call_tool, run_tool
from test_train_tools import TEST, TRAIN, assert_clean_error

#: end-to-end tool runs: the full suite only
pytestmark = pytest.mark.slow

DIGITS = osp.join(ROOT, 'configs', 'demo', 'repvgg-tiny_digits.py')
TOOLS = osp.join(ROOT, 'tools')
#: 128 training images, batch 32, a checkpoint every epoch, all kept
SMALL_RUN = ['train_dataloader.dataset.indices=128',
             'train_dataloader.batch_size=32',
             'default_hooks.checkpoint.interval=1',
             'default_hooks.checkpoint.max_keep_ckpts=3',
             'default_hooks.logger.interval=4']
UNSAFE_MESSAGE = ('holds Python objects that safe loading',
                  'could run arbitrary code', '--unsafe-load')


def data_options(data):
    return [f'{loader}.dataset.data_root={data}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]


def run(cmd, cwd=ROOT):
    """``cmd`` (``[python, tool, args...]``) through conftest's run_tool."""
    return run_tool(*cmd[1:], cwd=cwd)


def train_cmd(data, work_dir, epochs, *extra):
    return [sys.executable, TRAIN, DIGITS, '--work-dir', work_dir,
            '--no-validate', *extra, '--cfg-options', *data_options(data),
            *SMALL_RUN, f'train_cfg.max_epochs={epochs}']


def evaluate_cmd(data, checkpoint, work_dir, *extra):
    return [sys.executable, TEST, DIGITS, checkpoint, '--work-dir',
            work_dir, *extra, '--cfg-options', *data_options(data)]


def assert_same_tensors(path_a, path_b):
    """Every tensor of the two checkpoints' state_dict, bit for bit."""
    a = torch.load(path_a, map_location='cpu', weights_only=False)
    b = torch.load(path_b, map_location='cpu', weights_only=False)
    a, b = a['state_dict'], b['state_dict']
    assert a.keys() == b.keys() and len(a) > 100
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == [], f'{len(differ)} of {len(a)} tensors differ'


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    from harness.demos.digits_dataset import write_digits_dataset
    data = str(tmp_path_factory.mktemp('digits') / 'data')
    write_digits_dataset(data, size=8)
    return data


@pytest.fixture(scope='module')
def runs(digits, tmp_path_factory):
    """Work dirs of a 3-epoch run and of one stopped after epoch 2 and
    resumed with ``tools/train.py --resume`` for epoch 3."""
    root = tmp_path_factory.mktemp('runs')
    whole, split = str(root / 'whole'), str(root / 'split')
    assert_succeeded(run(train_cmd(digits, whole, 3)))
    assert_succeeded(run(train_cmd(digits, split, 2)))
    proc = run(train_cmd(digits, split, 3, '--resume',
                         osp.join(split, 'epoch_2.pth')))
    assert_succeeded(proc)
    assert 'resumed epoch: 2, iter: 8' in proc.stdout + proc.stderr
    return whole, split


# ---------------------------------------------------------------- point 8
def test_resume_with_random_crop_and_workers_is_bit_identical(runs):
    whole, split = runs
    # the first two epochs are deterministic ...
    assert_same_tensors(osp.join(whole, 'epoch_2.pth'),
                        osp.join(split, 'epoch_2.pth'))
    # ... and so is the resumed third (without EpochSeedHook: 77 of the
    # 118 tensors differ, the workers' crops restart their stream)
    assert_same_tensors(osp.join(whole, 'epoch_3.pth'),
                        osp.join(split, 'epoch_3.pth'))


# ------------------------------------------------------- bad checkpoints
class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(scope='module')
def bad(tmp_path_factory):
    """``{kind: path}`` of checkpoints the tools must refuse, and the file
    the malicious one would create if it ran."""
    from mmengine.config import Config

    from repvgg_mm.converters.config_model import build_model
    root = tmp_path_factory.mktemp('bad')
    good = build_model(Config.fromfile(DIGITS)).state_dict()
    paths = {k: str(root / f'{k}.pth') for k in (
        'truncated', 'garbage', 'other_arch', 'malicious')}
    torch.save({'state_dict': good}, paths['truncated'])
    with open(paths['truncated'], 'rb') as f:
        data = f.read()
    with open(paths['truncated'], 'wb') as f:
        f.write(data[:len(data) // 2])
    with open(paths['garbage'], 'wb') as f:
        f.write(bytes(range(256)) * 16)
    cfg = Config.fromfile(DIGITS)
    cfg.model.backbone.arch.num_blocks = [1, 1, 1, 1]  # another arch
    torch.save({'state_dict': build_model(cfg).state_dict()},
               paths['other_arch'])
    marker = str(root / 'PWNED')
    torch.save({'state_dict': good, 'meta': _RunsCode(marker)},
               paths['malicious'])
    return paths, marker


EXPECTED = {
    'truncated': ('is corrupt or truncated', ),
    'garbage': ('is corrupt or truncated', ),
    'other_arch': ('do not match the model', 'missing keys: '
                   'backbone.stage_1.1.'),
}


@pytest.mark.parametrize('tool', ['train', 'test'])
@pytest.mark.parametrize('kind', sorted(EXPECTED))
def test_bad_checkpoint_is_one_error_and_no_work_dir(digits, bad, tmp_path,
                                                     tool, kind):
    path = bad[0][kind]
    work_dir = str(tmp_path / 'work')
    cmd = (train_cmd(digits, work_dir, 3, '--resume', path)
           if tool == 'train' else evaluate_cmd(digits, path, work_dir))
    proc = run(cmd)
    assert_clean_error(proc, f'"{path}"', *EXPECTED[kind])
    assert len(proc.stderr.strip().splitlines()) == 1  # one paragraph
    if kind != 'other_arch':
        assert 'do not match' not in proc.stderr
    assert not osp.exists(work_dir)


def _malicious_cmd(tool, digits, path, tmp_path):
    out = str(tmp_path / 'out' / 'x')
    data = ['--cfg-options', *data_options(digits)]
    return {
        'train': train_cmd(digits, str(tmp_path / 'work'), 3, '--resume',
                           path),
        'test': evaluate_cmd(digits, path, str(tmp_path / 'work')),
        'convert_deploy': [osp.join(TOOLS, 'convert_deploy.py'), DIGITS,
                           path, out + '.pth', *data],
        'convert_weights': [osp.join(TOOLS, 'convert_weights.py'), path,
                            out + '.pth', '--format', 'official', '--arch',
                            'a0'],
        'benchmark_fps': [osp.join(TOOLS, 'benchmark_fps.py'), DIGITS, path,
                          '--rounds', '1', '--iters', '1', '--warmup', '0',
                          '--batch-size', '1', '--shape', '32', '--no-gemm',
                          *data],
        'quantize': [osp.join(TOOLS, 'quantize.py'), DIGITS, path,
                     out + '.onnx', '--backend', 'onnxruntime', '--calib',
                     '4', *data],
    }[tool]


@pytest.mark.parametrize('tool', ['train', 'test', 'convert_deploy',
                                  'convert_weights', 'benchmark_fps',
                                  'quantize'])
def test_malicious_checkpoint_is_named_by_every_tool(digits, bad, tmp_path,
                                                     tool):
    (path, marker) = bad[0]['malicious'], bad[1]
    cmd = _malicious_cmd(tool, digits, path, tmp_path)
    if cmd[0] == sys.executable:  # a Runner tool: in its own process
        proc = run(cmd, cwd=str(tmp_path))
    else:  # refused while loading: in this process
        proc = call_tool(*cmd)
    assert_clean_error(proc, f'"{path}"', 'it imports posix.system',
                       *UNSAFE_MESSAGE)
    assert 'corrupt' not in proc.stderr and 'truncated' not in proc.stderr
    assert not osp.exists(marker)  # refused without running it
    # nothing written: no work dir, no OUT (nor its folder's content)
    assert sorted(os.listdir(tmp_path)) in ([], ['out'])
    if osp.isdir(tmp_path / 'out'):
        assert os.listdir(tmp_path / 'out') == []


# ---------------------------------------------------------- --unsafe-load
@pytest.fixture(scope='module')
def old_style(runs, tmp_path_factory):
    """The uninterrupted run's epoch_2.pth with an ``argparse.Namespace`` in
    its meta, as old training scripts stored their arguments: harmless, but
    outside what weights-only loading allows."""
    path = str(tmp_path_factory.mktemp('old') / 'epoch_2_old_style.pth')
    checkpoint = torch.load(osp.join(runs[0], 'epoch_2.pth'),
                            weights_only=False)
    checkpoint['meta']['args'] = argparse.Namespace(lr=0.1, epochs=3)
    torch.save(checkpoint, path)
    return path


def test_trusted_old_style_pickle_needs_unsafe_load_to_resume(
        digits, runs, old_style, tmp_path):
    work_dir = str(tmp_path / 'work')
    refused = run(train_cmd(digits, work_dir, 3, '--resume', old_style))
    assert_clean_error(refused, 'it imports argparse.Namespace',
                       *UNSAFE_MESSAGE)
    assert not osp.exists(work_dir)
    proc = run(train_cmd(digits, work_dir, 3, '--resume', old_style,
                         '--unsafe-load'))
    assert_succeeded(proc)
    assert 'resumed epoch: 2, iter: 8' in proc.stdout + proc.stderr
    # mmengine's own read of the file unpickled it too, and resumed exactly
    assert_same_tensors(osp.join(runs[0], 'epoch_3.pth'),
                        osp.join(work_dir, 'epoch_3.pth'))


def test_trusted_old_style_pickle_needs_unsafe_load_to_test(
        digits, old_style, tmp_path):
    work_dir = str(tmp_path / 'work')
    refused = run(evaluate_cmd(digits, old_style, work_dir))
    assert_clean_error(refused, 'it imports argparse.Namespace',
                       *UNSAFE_MESSAGE)
    assert not osp.exists(work_dir)
    proc = run(evaluate_cmd(digits, old_style, work_dir, '--unsafe-load'))
    assert_succeeded(proc)
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_trusted_old_style_pickle_needs_unsafe_load_to_benchmark(
        digits, old_style):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'benchmark_fps.py'),
           DIGITS, old_style, '--batch-size', '2', '--warmup', '0',
           '--iters', '1', '--rounds', '1', '--no-gemm', '--cfg-options',
           *data_options(digits)]
    refused = run(cmd)
    assert_clean_error(refused, 'it imports argparse.Namespace',
                       *UNSAFE_MESSAGE)
    proc = run(cmd + ['--unsafe-load'])
    assert_succeeded(proc)
    assert 'deployed vs training form' in proc.stdout
