"""The digits demo: dataset tool, a shortened end-to-end run, bad input.

The shortened run trains one epoch (not the accuracy target; that is
measured by the full ``python tools/demo_digits.py`` run in the README).
"""
import json
import os

import numpy as np
import pytest
import torch
from conftest import REL_TOL, assert_succeeded
from conftest import call_tool as call_conftest_tool
from conftest import run_tool

from harness.demos import digits_dataset as digits_module
from harness.demos.digits_dataset import (META_FILE, DigitsDatasetError,
                                          count_images, ensure_digits_dataset,
                                          write_digits_dataset)
from harness.demos.digits_demo import (REPORT_TYPES, compare_predictions,
                                       set_max_epochs)
from repvgg_mm.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(ROOT, 'configs/demo/repvgg-tiny_digits.py')
DEPLOY_CONFIG = os.path.join(ROOT, 'configs/demo/repvgg-tiny_digits_deploy.py')
NUM_DIGITS = 1797


def call_tool(name, *args, capsys):
    """``tools/<name>.py ARGS`` in this process (no interpreter start-up):
    returns ``(exit status, stderr)``."""
    proc = call_conftest_tool(f'{name}.py', *args, capsys=capsys)
    return proc.returncode, proc.stderr


@pytest.fixture(scope='module')
def class_sizes():
    from sklearn.datasets import load_digits
    return np.bincount(load_digits().target)


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    """A default-settings dataset shared by the tests of this module."""
    root = str(tmp_path_factory.mktemp('data') / 'digits')
    result = run_tool('tools/make_digits_dataset.py', root)
    assert_succeeded(result)
    assert '1797/1797' in result.stdout  # mmengine's progress bar
    return root


# ----------------------------------------------------------------------
# the dataset tool
@pytest.mark.slow
def test_dataset_layout_and_split(digits_root, class_sizes):
    counts = count_images(digits_root)
    classes = [str(c) for c in range(10)]
    assert list(counts) == ['train', 'val']
    assert list(counts['train']) == classes and list(counts['val']) == classes
    for c, size in enumerate(class_sizes):
        assert counts['val'][str(c)] == round(size * 0.2)
        assert counts['train'][str(c)] + counts['val'][str(c)] == size
    assert sum(counts['train'].values()) == 1438
    assert sum(counts['val'].values()) == 359
    # every source image exactly once, named by its index in load_digits()
    names = sorted(name for split in ('train', 'val') for c in classes
                   for name in os.listdir(os.path.join(digits_root, split, c)))
    assert names == [f'{i:04d}.png' for i in range(NUM_DIGITS)]
    with open(os.path.join(digits_root, META_FILE)) as f:
        meta = json.load(f)
    assert meta['counts'] == counts
    assert meta['settings'] == dict(size=32, val_fraction=0.2, seed=0)
    leftovers = [n for n in os.listdir(os.path.dirname(digits_root))
                 if n != 'digits']
    assert leftovers == []


def test_dataset_images_match_the_source(digits_root):
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    for split, cls in (('train', '0'), ('val', '7')):
        name = sorted(os.listdir(os.path.join(digits_root, split, cls)))[0]
        index = int(name[:-len('.png')])
        assert digits.target[index] == int(cls)
        img = Image.open(os.path.join(digits_root, split, cls, name))
        assert img.mode == 'L' and img.size == (32, 32)
        # downscaled back to 8x8 it is nearer to its own source image than
        # to any other of the 1,797, within 1.5 of the 0..16 grey levels
        back = np.asarray(img.resize((8, 8), Image.Resampling.BOX),
                          float) * 16 / 255
        dist = np.abs(digits.images - back).mean(axis=(1, 2))
        assert dist.argmin() == index
        assert dist[index] < 1.5, dist[index]


def test_custom_dataset_reads_it(digits_root):
    from mmpretrain.datasets import CustomDataset
    pipeline = [dict(type='LoadImageFromFile', color_type='grayscale'),
                dict(type='PackInputs')]
    from mmengine.registry import DefaultScope
    for split, expected in (('train', 1438), ('val', 359)):
        # the transforms are mmpretrain's, whatever scope earlier tests set
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            dataset = CustomDataset(data_root=digits_root, data_prefix=split,
                                    pipeline=pipeline)
        assert len(dataset) == expected
        assert dataset.metainfo['classes'] == tuple(str(c) for c in range(10))
        sample = dataset[len(dataset) - 1]
        assert tuple(sample['inputs'].shape) == (1, 32, 32)
        assert sample['data_samples'].gt_label.item() == 9


def test_dataset_is_idempotent_and_deterministic(digits_root, tmp_path):
    meta_file = os.path.join(digits_root, META_FILE)
    before = os.path.getmtime(meta_file)
    write_digits_dataset(digits_root)  # nothing to do: the file stays
    assert os.path.getmtime(meta_file) == before
    # the same seed gives the same split, another seed another one
    same = str(tmp_path / 'same')
    other = str(tmp_path / 'other')
    write_digits_dataset(same, size=8)
    write_digits_dataset(other, size=8, seed=1)
    assert sorted(os.listdir(os.path.join(same, 'val', '3'))) == sorted(
        os.listdir(os.path.join(digits_root, 'val', '3')))
    assert sorted(os.listdir(os.path.join(other, 'val', '3'))) != sorted(
        os.listdir(os.path.join(same, 'val', '3')))
    assert count_images(other) == count_images(same)


def test_dataset_other_settings_need_overwrite(tmp_path):
    root = str(tmp_path / 'digits')
    write_digits_dataset(root, size=8)
    with pytest.raises(DigitsDatasetError, match='written with other '
                       'settings.*Pass --overwrite'):
        write_digits_dataset(root, size=12)
    meta = write_digits_dataset(root, size=12, overwrite=True)
    assert meta['settings']['size'] == 12
    assert sorted(os.listdir(tmp_path)) == ['digits']
    # a lost image is noticed, by the tool and by the demo
    lost = os.path.join(root, 'val', '3')
    os.remove(os.path.join(lost, sorted(os.listdir(lost))[0]))
    with pytest.raises(DigitsDatasetError, match='is incomplete .*Pass '
                       '--overwrite'):
        write_digits_dataset(root, size=12)
    with pytest.raises(DigitsDatasetError, match='Rewrite it with "python '
                       'tools/make_digits_dataset.py .* --overwrite"'):
        ensure_digits_dataset(root)
    write_digits_dataset(root, size=12, overwrite=True)
    assert count_images(root)['val']['3'] == meta['counts']['val']['3']


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    real = digits_module.digit_to_image
    written = []

    def failing(image, size):
        if len(written) == 100:
            raise KeyboardInterrupt
        written.append(1)
        return real(image, size)

    monkeypatch.setattr(digits_module, 'digit_to_image', failing)
    with pytest.raises(KeyboardInterrupt):
        write_digits_dataset(str(tmp_path / 'digits'), size=8)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('args, message', [
    (['--val-fraction', '1.5'],
     'error: --val-fraction must be a number strictly between 0 and 1'),
    (['--val-fraction', '0.001'],
     'error: --val-fraction 0.001 leaves class 0 (178 images) with 0 '
     'validation and 178 training images'),
    (['--size', '4'], 'error: --size must be a whole number of pixels from 8'),
    (['--seed', '-1'], 'error: --seed must be a non-negative whole number'),
])
def test_dataset_tool_bad_settings(tmp_path, capsys, args, message):
    out = str(tmp_path / 'digits')
    code, stderr = call_tool('make_digits_dataset', out, *args, capsys=capsys)
    assert code == 2
    assert stderr.startswith(message), stderr
    assert os.listdir(tmp_path) == []


def test_dataset_tool_bad_out_dir(tmp_path, capsys):
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('mine')
    code, stderr = call_tool('make_digits_dataset', str(a_file / 'digits'),
                             capsys=capsys)
    assert code == 2
    assert stderr.startswith('error: cannot write OUT_DIR')
    assert f'"{a_file}" is a file, not a folder' in stderr
    assert 'Choose another OUT_DIR' in stderr

    code, stderr = call_tool('make_digits_dataset', str(a_file),
                             capsys=capsys)
    assert code == 2
    assert stderr.startswith(f'error: "{a_file}" exists and is not a folder.')

    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'cat.jpg').write_bytes(b'x')
    code, stderr = call_tool('make_digits_dataset', str(foreign),
                             '--overwrite', capsys=capsys)
    assert code == 2
    assert 'is a non-empty folder that was not written by this tool' in stderr
    assert os.listdir(foreign) == ['cat.jpg'] and a_file.read_text() == 'mine'

    code, stderr = call_tool('make_digits_dataset', '--size', 'big',
                             capsys=capsys)
    assert code == 2
    assert "argument --size: invalid int value: 'big'" in stderr


# ----------------------------------------------------------------------
# the demo
def test_set_max_epochs_moves_the_schedule_end():
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    set_max_epochs(cfg, 3)
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[-1]['end'] == 3
    with pytest.raises(ConfigError, match='--epochs must be a positive'):
        set_max_epochs(cfg, 0)


def test_compare_predictions_counts_differences():
    ref = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 4.0]])
    other = ref.clone()
    other[1, 1] = 3.5
    result = compare_predictions(ref, other)
    assert result['num_differing_predictions'] == 1
    assert result['max_score_abs_diff'] == pytest.approx(3.5)
    assert result['max_score_rel_diff'] == pytest.approx(3.5 / 4.0)


@pytest.fixture(scope='module')
def demo_run(digits_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('work'))
    result = run_tool('tools/demo_digits.py', '--work-dir', work_dir,
                      '--data-root', digits_root, '--epochs', '1',
                      '--timing-batch', '32', '--timing-rounds', '2',
                      '--min-time', '0.1')
    assert_succeeded(result)
    return work_dir, result.stdout


@pytest.mark.slow
def test_demo_shortened_run(demo_run, digits_root):
    work_dir, stdout = demo_run
    for i in range(7):
        assert f'[demo] step {i}/6' in stdout
    assert 'RepVGG demo report' in stdout
    with open(os.path.join(work_dir, 'report.json')) as f:
        report = json.load(f)
    assert set(report) == set(REPORT_TYPES)
    for key, kind in REPORT_TYPES.items():
        assert isinstance(report[key], kind), (key, report[key])
    assert report['epochs'] == 1
    assert report['num_train_images'] == 1438
    assert report['num_val_images'] == 359
    assert report['data_root'] == digits_root
    assert report['num_differing_predictions'] == 0
    assert report['max_score_rel_diff'] < REL_TOL
    assert report['top1_train_form'] == report['top1_deploy_form']
    assert 0.0 <= report['top1_train_form'] <= 100.0
    # stem + 2 + 2 + 2 + 1 blocks; the deploy form drops the extra branches
    assert report['num_blocks_fused'] == 8
    assert report['params_deploy_form'] < report['params_train_form']
    assert report['timing_batch_size'] == 32
    assert report['images_per_s_train_form'] > 0
    assert report['images_per_s_deploy_form'] > 0
    assert set(report['seconds']) == {'dataset', 'train', 'test_train_form',
                                      'test_deploy_form', 'deploy', 'total'}
    # ONNX Runtime fp32 runs the exported graph (preprocessing inside): the
    # same predictions as PyTorch's deploy form
    assert report['onnxruntime_differing_predictions'] == 0
    assert report['top1_onnxruntime'] == pytest.approx(
        report['top1_deploy_form'], abs=1e-6)
    assert report['images_per_s_onnxruntime'] > 0
    # INT8 (OpenVINO + NNCF): its fp32 reference graph is the deploy form
    # (at most one image of 359 may flip on round-off), INT8 stays close
    assert report['int8_backend'] == 'openvino'
    assert report['int8_calibration_images'] == 300
    assert abs(report['top1_int8_reference_fp32'] -
               report['top1_deploy_form']) <= 100 / 359 + 1e-6
    assert abs(report['top1_int8'] - report['top1_int8_reference_fp32']) <= 5
    assert report['int8_agreement'] >= 0.9
    assert report['images_per_s_int8'] > 0
    # tools/deploy.py's job: a serving within the bound, shipped with its
    # report; the table ends the printed output
    deploy_dir = os.path.join(work_dir, 'deploy')
    assert report['deploy_dir'] == deploy_dir
    assert report['chosen_serving'] and report['chosen_drop'] <= 0.5
    assert report['chosen_speedup_vs_train_form'] > 0
    names = set(os.listdir(deploy_dir))
    assert {'report.json', 'report.md', 'model_card.md',
            'speed_vs_accuracy.png'} <= names
    assert names & {'model.onnx', 'model.xml'}
    assert f'`{report["chosen_serving"]}`' in stdout.split(
        'RepVGG demo report')[1]
    # written by the config's SwitchToDeployHook at the end of training
    assert report['checkpoint'] == os.path.join(work_dir, 'epoch_1.pth')
    assert report['deploy_checkpoint'] == os.path.join(
        work_dir, 'epoch_1_deploy.pth')
    assert report['deploy_config'] == os.path.join(
        work_dir, 'repvgg-tiny_digits_deploy.py')
    assert not [n for n in os.listdir(work_dir) if n.startswith('.tmp-')]


@pytest.mark.slow
def test_deploy_checkpoint_loads_into_deploy_config(demo_run, digits_root,
                                                    tmp_path):
    """The saved deploy weights, tested with the shipped deploy config
    through tools/test.py's function, reproduce the reported deploy top-1."""
    from harness.demos.digits_demo import data_root_options
    from repvgg_mm.apis import test_model
    work_dir, _ = demo_run
    with open(os.path.join(work_dir, 'report.json')) as f:
        report = json.load(f)
    metrics = test_model(DEPLOY_CONFIG, report['deploy_checkpoint'],
                         work_dir=str(tmp_path),
                         cfg_options=data_root_options(digits_root))
    assert metrics['accuracy/top1'] == pytest.approx(
        report['top1_deploy_form'], abs=1e-6)


def test_demo_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    work = str(tmp_path / 'work')
    code, stderr = call_tool('demo_digits', '--epochs', '0', '--work-dir',
                             work, capsys=capsys)
    assert code == 2
    assert stderr.startswith(
        'error: --epochs must be a positive whole number, got 0.')
    code, stderr = call_tool('demo_digits', '--config', 'configs/nope.py',
                             '--work-dir', work, capsys=capsys)
    assert code == 2
    assert stderr.startswith(
        'error: config file "configs/nope.py" does not exist.')
    code, stderr = call_tool('demo_digits', '--threads', '0', '--work-dir',
                             work, capsys=capsys)
    assert code == 2
    assert stderr.startswith('error: --timing-batch, --timing-rounds and '
                             '--threads must be positive whole numbers.')
    a_file = tmp_path / 'digits.zip'
    a_file.write_bytes(b'x')
    code, stderr = call_tool('demo_digits', '--data-root', str(a_file),
                             '--work-dir', work, capsys=capsys)
    assert code == 2
    assert stderr.startswith(f'error: "{a_file}" exists and is not a folder.')
    assert not os.path.exists(work)
