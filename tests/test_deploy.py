"""tools/deploy.py: the fastest serving that keeps the accuracy.

Unit tests of the choice, the ceilings and the timing window; bad input
(exit 2, nothing written); one end-to-end run on a one-epoch digits model
with the servings and rounds cut down (its own process: NNCF quantizing
inside the pytest process made later subprocess starts crash it, see
tests/test_quantize.py).
"""
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT, assert_succeeded
from test_quantize import trained  # noqa: F401
from test_quantize import _options, call_tool, cfg_args, digits_root  # noqa

from repvgg_mm.errors import ConfigError
from repvgg_mm.runtime.ceiling import ceilings, dominant_shape, layers_of
from repvgg_mm.runtime.rounds import summary, time_forward
from repvgg_mm.runtime.servings import check_servings, select

CONFIG = os.path.join(ROOT, 'configs/demo/repvgg-tiny_digits.py')


def row(name, rates, drop, precision='fp32'):
    return dict(name=name, precision=precision, drop=drop,
                images_per_s=summary(rates))


def test_select_fastest_within_the_bound_and_ties():
    rows = [row('torch-train', [10, 11], 0.0),
            row('torch', [20, 21], 0.0),
            row('openvino', [40, 44], 0.0),
            row('onnxruntime', [41, 43], 0.1),   # overlaps openvino
            row('openvino-int8', [90, 95], 2.0, 'int8'),
            dict(name='openvino-bf16', precision='bf16', error='boom')]
    names = [r['name'] for r in rows[1:]]
    choice = select(rows, 0.5, names)
    assert choice == dict(chosen='openvino', met=True, closest=None,
                          tied=['onnxruntime'])
    status = {r['name']: r['status'] for r in rows}
    assert status == {'torch-train': 'baseline', 'torch': 'slower',
                      'openvino': 'chosen', 'onnxruntime': 'tied',
                      'openvino-int8': 'rejected', 'openvino-bf16': 'failed'}
    assert rows[4]['reason'] == 'drop 2.00 > 0.5 points'
    assert 'tied with onnxruntime' in rows[2]['reason']
    assert rows[5]['reason'] == 'could not run: boom'


def test_select_no_serving_meets_the_bound_names_the_closest():
    rows = [row('torch', [20, 21], 0.0),
            row('onnxruntime-int8', [60, 61], 1.5, 'int8'),
            row('openvino-int8', [90, 95], 0.9, 'int8')]
    choice = select(rows, 0.5, ['onnxruntime-int8', 'openvino-int8'])
    assert choice == dict(chosen=None, met=False, closest='openvino-int8',
                          tied=[])
    assert rows[0]['status'] == 'baseline'  # the reference, not a candidate


def test_ceiling_is_never_below_a_serving():
    stack = {'fp32': [100e9, 110e9, 120e9], 'int8': [400e9, 420e9, 440e9]}
    servings = {'openvino': ('fp32', [130e9, 131e9, 129e9]),
                'openvino-int8': ('int8', [300e9, 310e9, 320e9])}
    found = ceilings(stack, servings)
    assert found['fp32']['macs_per_s'] == pytest.approx(130e9)
    assert found['fp32']['source'] == 'openvino'
    assert 'ran faster than the conv stack' in found['fp32']['note']
    assert found['int8']['macs_per_s'] == pytest.approx(420e9)
    assert found['int8']['source'] == 'conv stack'


def test_dominant_shape_of_a_repvgg_deploy_form():
    import torch

    from repvgg_mm.converters.config_model import build_model
    from repvgg_mm.deploy import switch_to_deploy
    from repvgg_mm.utils.config import load_config
    model = switch_to_deploy(build_model(load_config(CONFIG)).eval())
    layers = layers_of(model.backbone, torch.zeros(1, 1, 32, 32))
    assert len(layers) == 8 and all(la.kind == 'conv3x3' for la in layers)
    channels, height, width = dominant_shape(layers)
    best = max(layers, key=lambda la: la.macs)
    assert (channels, height, width) == (best.out_channels, best.height,
                                         best.width) or sum(
        la.macs for la in layers if (la.out_channels, la.height) == (
            channels, height)) >= best.macs


def test_timing_window_is_filled_not_a_fixed_count():
    calls = []

    def forward():
        calls.append(1)
        time.sleep(0.01)

    times = time_forward(forward, warmup=1, iters=2, min_time=0.1)
    assert sum(times) >= 0.1 and len(times) >= 8
    assert len(calls) == len(times) + 1


def test_serving_names_one_per_backend():
    assert check_servings(['ort', 'ort-int8']) == ['onnxruntime',
                                                   'onnxruntime-int8']
    with pytest.raises(ConfigError, match='unknown serving "tensorrt"'):
        check_servings(['tensorrt'])


@pytest.mark.parametrize('args, message', [
    (['--servings', 'tensorrt'], 'error: unknown serving "tensorrt"'),
    (['--max-drop', '-1'], 'error: --max-drop must be a number of points'),
    (['--rounds', '0'], 'error: --rounds must be a positive whole number'),
    (['--threads', '0'], 'error: --threads must be a positive whole number'),
])
def test_bad_options_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / 'out'
    code, _, err = call_tool('deploy', [CONFIG, 'random', str(out), *args],
                             capsys)
    assert code == 2 and err.startswith(message), err
    assert os.listdir(tmp_path) == []


def test_no_val_split_and_foreign_out_dir(tmp_path, capsys):
    out = tmp_path / 'out'
    code, _, err = call_tool('deploy', [
        CONFIG, 'random', str(out), '--cfg-options',
        'val_dataloader=None', 'test_dataloader=None'], capsys)
    assert code == 2, err
    assert err.startswith('error: the config defines no val_dataloader or '
                          'test_dataloader'), err
    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'cat.jpg').write_bytes(b'x')
    code, _, err = call_tool('deploy', [CONFIG, 'random', str(foreign),
                                        '--speed-only'], capsys)
    assert code == 2
    assert 'is a non-empty folder that was not written by tools/deploy.py' \
        in err
    assert os.listdir(foreign) == ['cat.jpg']
    assert sorted(os.listdir(tmp_path)) == ['photos']


def test_tool_exit_1_when_no_serving_meets_the_bound(tmp_path, capsys,
                                                     monkeypatch):
    import repvgg_mm.apis as apis
    report = dict(met=False, chosen=None, closest='openvino-int8',
                  servings=[], metric_name='accuracy/top1',
                  baseline='torch-train')
    monkeypatch.setattr(apis, 'deploy_model', lambda *a, **k: report,
                        raising=False)
    code, out, _ = call_tool('deploy', [CONFIG, 'x.pth', str(tmp_path / 'o')],
                             capsys)
    assert code == 1
    assert 'closest: openvino-int8' in out


@pytest.mark.slow
def test_deploy_digits_end_to_end(digits_root, trained, tmp_path):  # noqa
    out = str(tmp_path / 'deployed')
    result = subprocess.run(
        [sys.executable, 'tools/deploy.py', CONFIG, trained, out,
         '--servings', 'onnxruntime', 'openvino-int8', '--rounds', '2',
         '--min-time', '0.05', '--calib', '64', '--batch-size', '16',
         *cfg_args(digits_root)], cwd=ROOT, capture_output=True, text=True,
        timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode in (0, 1), result.stderr[-3000:]
    with open(os.path.join(out, 'report.json')) as f:
        report = json.load(f)
    rows = {r['name']: r for r in report['servings']}
    assert set(rows) >= {'torch-train', 'torch', 'onnxruntime',
                         'openvino-int8'}
    assert report['metric_name'] == 'accuracy/top1'
    assert report['calibration'] == dict(split='train', images=64)
    # fp32 runtimes run the same function: the same top-1, no flipped image
    assert rows['onnxruntime']['metric'] == pytest.approx(
        rows['torch']['metric'])
    assert rows['onnxruntime']['agreement'] == 1.0
    assert rows['torch-train']['metric'] == pytest.approx(
        rows['torch']['metric'])
    for r in rows.values():
        assert len(r['images_per_s']['values']) == 2
        assert 0 < r['pct_of_ceiling'] <= 100 + 1e-9
    assert report['met'] == (report['chosen'] is not None)
    assert_succeeded(result) if report['met'] else None
    if report['met']:
        chosen = rows[report['chosen']]
        assert chosen['drop'] <= 0.5 and chosen['status'] == 'chosen'
        assert set(os.listdir(out)) >= {'report.json', 'report.md',
                                        'model_card.md',
                                        'speed_vs_accuracy.png'}
        card = open(os.path.join(out, 'model_card.md')).read()
        assert 'GRAY' in card and '0-255' in card
    md = open(os.path.join(out, 'report.md')).read()
    assert md.count('| `') == len(rows)
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]


def test_detector_is_not_yet_supported(tmp_path, capsys):
    out = tmp_path / 'out'
    code, _, err = call_tool('deploy', [
        os.path.join(ROOT, 'configs/demo/retinanet_repvgg-tiny_digits-det.py'),
        'random', str(out), '--speed-only'], capsys)
    assert code == 2
    assert err.startswith('error: deploying a detector is not yet supported')
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_deploy_segmentor_metric_is_miou(tmp_path):
    """A segmentor goes through the same job: mIoU by the config's
    evaluator on the val split (random weights: the path, not the figure)."""
    import torch

    from repvgg_mm.converters.config_model import build_model
    from repvgg_mm.utils.config import load_config
    seg = os.path.join(ROOT, 'configs/demo/'
                       'pspnet_repvgg-tiny_cityscapes-demo.py')
    data = str(tmp_path / 'cs')
    made = subprocess.run(
        [sys.executable, 'tools/make_cityscapes_demo.py', data], cwd=ROOT,
        capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert_succeeded(made)
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'seg.pth')
    torch.save(dict(state_dict=build_model(load_config(seg)).state_dict()),
               ckpt)
    out = str(tmp_path / 'out')
    result = subprocess.run(
        [sys.executable, 'tools/deploy.py', seg, ckpt, out, '--servings',
         'onnxruntime', '--rounds', '1', '--min-time', '0.05', '--calib',
         '8', '--batch-size', '2', *cfg_args(data)], cwd=ROOT,
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert_succeeded(result)
    with open(os.path.join(out, 'report.json')) as f:
        report = json.load(f)
    assert report['task'] == 'segmentor'
    assert report['metric_name'] == 'mIoU'
    rows = {r['name']: r for r in report['servings']}
    assert rows['onnxruntime']['metric'] == pytest.approx(
        rows['torch']['metric'], abs=1e-6)
    assert report['chosen'] == 'onnxruntime'
    assert os.path.isfile(os.path.join(out, 'model.onnx'))
