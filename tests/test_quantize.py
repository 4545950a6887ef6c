"""INT8 post-training quantization: ONNX Runtime and OpenVINO end to end on
the digits, ``--eval`` figures, bad input, the per-layer statistics.

The model is the tiny digits RepVGG trained here for one epoch in plain
torch (a few seconds), so fp32 top-1 is far above chance and the INT8
figures mean something.
"""
import os
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import ROOT
from conftest import call_tool as conftest_call_tool
from conftest import run_tool

from harness.benchmark.int8_analysis import (W_QMAX, analyse,
                                             fake_quant_weight, kernel_stats)
from repvgg_mm.apis.quantize import load_deploy_model, quantize_model
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.io.checkpoint import atomic_save
from repvgg_mm.runtime.evaluate import build_split_dataset, graph_inputs
from repvgg_mm.runtime.graph import InferenceGraph
from repvgg_mm.utils.config import load_config

CONFIG = os.path.join(ROOT, 'configs/demo/repvgg-tiny_digits.py')


def _options(root):
    return {f'{loader}.dataset.data_root': root
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')}


def cfg_args(root):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in _options(root).items()]


def call_tool(name, args, capsys):
    """``tools/<name>.py ARGS`` in this process: (exit status, out, err)."""
    proc = conftest_call_tool(f'{name}.py', *args, capsys=capsys)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    from harness.demos.digits_dataset import write_digits_dataset
    root = str(tmp_path_factory.mktemp('data') / 'digits')
    write_digits_dataset(root)
    return root


@pytest.fixture(scope='module')
def trained(digits_root, tmp_path_factory):
    """A training-form checkpoint after one epoch of SGD on the digits."""
    torch.manual_seed(0)
    cfg = load_config(CONFIG, _options(digits_root))
    model = build_model(cfg)
    dataset = build_split_dataset(cfg, 'train')
    graph = InferenceGraph.of(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.randperm(len(dataset)).tolist()
    for start in range(0, len(order), 32):
        items = [dataset[i] for i in order[start:start + 32]]
        x = torch.from_numpy(graph_inputs([it['inputs'] for it in items]))
        y = torch.cat([it['data_samples'].gt_label for it in items])
        loss = nn.functional.cross_entropy(graph(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = str(tmp_path_factory.mktemp('ckpt') / 'digits.pth')
    atomic_save(dict(state_dict=model.state_dict()), path)
    return path


def torch_top1(digits_root, checkpoint):
    cfg = load_config(CONFIG, _options(digits_root))
    graph = InferenceGraph.of(load_deploy_model(cfg, checkpoint))
    dataset = build_split_dataset(cfg, 'val')
    items = [dataset[i] for i in range(len(dataset))]
    x = torch.from_numpy(graph_inputs([it['inputs'] for it in items]))
    y = torch.cat([it['data_samples'].gt_label for it in items])
    with torch.no_grad():
        return 100.0 * float((graph(x).argmax(1) == y).float().mean())


# ----------------------------------------------------------------------
# end to end
def test_build_model_takes_the_top_level_data_preprocessor():
    # the graph's normalisation comes from it (as mmengine's Runner does)
    model = build_model(load_config(CONFIG))
    assert model.data_preprocessor.mean.flatten().tolist() == [78.0]
    assert model.data_preprocessor.std.flatten().tolist() == [83.0]


def test_onnxruntime_eval_tool(digits_root, trained, tmp_path, capsys):
    out = str(tmp_path / 'int8.onnx')
    code, stdout, err = call_tool('quantize', [
        CONFIG, trained, out, '--backend', 'onnxruntime', '--calib', '64',
        '--eval', *cfg_args(digits_root)], capsys)
    assert code == 0, err
    assert os.path.isfile(out)
    fp32 = float(re.search(r'fp32 top-1: ([\d.]+)', stdout).group(1))
    int8 = float(re.search(r'int8 top-1: ([\d.]+)', stdout).group(1))
    agree = float(re.search(r'agreement: ([\d.]+) % of 359', stdout)
                  .group(1))
    # the fp32 graph is the torch model (1 image of 359 tolerance for ties)
    assert abs(fp32 - torch_top1(digits_root, trained)) <= 100 / 359 + 1e-6
    assert fp32 >= 70, stdout  # one epoch: far above chance (10 %)
    assert abs(int8 - fp32) <= 3.0, stdout
    assert 97.0 <= agree <= 100.0, stdout
    # the INT8 graph holds QDQ nodes with per-channel (1-D) weight scales
    import onnx
    graph = onnx.load(out).graph
    ops = {n.op_type for n in graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    scales = [i for i in graph.initializer if i.name.endswith('_scale')
              and len(i.dims) == 1 and i.dims[0] > 1]
    assert scales, 'no per-channel weight scales'


@pytest.mark.slow
@pytest.mark.parametrize('method', ['default', 'quantile'])
def test_openvino_tool(digits_root, trained, tmp_path, method):
    # In a process of its own, as users run it: after NNCF had quantized
    # in the pytest process, a later subprocess start crashed that process
    # (SIGSEGV, NNCF 3.4 / OpenVINO 2026.4 with torch 2.14.1; not isolated).
    import json
    out = str(tmp_path / 'int8.xml')
    result_file = str(tmp_path / 'result.json')
    options = [f'{k}={v}' for k, v in _options(digits_root).items()]
    run_tool('quantize.py', CONFIG, trained, out, '--backend', 'openvino',
             '--calib', '64', '--method', method, '--eval', '--json',
             result_file, '--cfg-options', *options, check=True)
    with open(result_file) as f:
        result = json.load(f)
    assert result['int8_path'] == out
    assert os.path.isfile(out) and os.path.isfile(str(tmp_path / 'int8.bin'))
    assert sorted(os.listdir(tmp_path)) == ['int8.bin', 'int8.xml',
                                            'result.json']
    assert result['num_calibration_images'] == 64
    assert result['num_val_images'] == 359
    assert result['top1_fp32'] >= 70
    assert abs(result['top1_int8'] - result['top1_fp32']) <= 3.0
    assert 0.97 <= result['agreement'] <= 1.0
    assert result['output_sqnr_db'] > 15
    import openvino as ov
    model = ov.Core().read_model(out)
    assert any(op.get_type_name() == 'FakeQuantize'
               for op in model.get_ops())


@pytest.mark.parametrize('method', ['percentile', 'entropy'])
def test_onnxruntime_methods(digits_root, trained, tmp_path, method):
    out = str(tmp_path / 'int8.onnx')
    result = quantize_model(CONFIG, trained, out, backend='onnxruntime',
                            calib=40, method=method, evaluate=True,
                            cfg_options=_options(digits_root),
                            progress=False)
    assert result['method'] == method
    assert result['num_calibration_images'] == 40  # 16 + 16 + 8 read
    assert 0.95 <= result['agreement'] <= 1.0
    assert abs(result['top1_int8'] - result['top1_fp32']) <= 5.0


def test_per_tensor_weights(digits_root, trained, tmp_path):
    import onnx
    out = str(tmp_path / 'int8.onnx')
    result = quantize_model(CONFIG, trained, out, backend='onnxruntime',
                            calib=16, per_channel=False,
                            cfg_options=_options(digits_root),
                            progress=False)
    assert result['per_channel_weights'] is False
    graph = onnx.load(out).graph
    assert not [i for i in graph.initializer if i.name.endswith('_scale')
                and len(i.dims) == 1 and i.dims[0] > 1]
    assert [n for n in graph.node if n.op_type == 'DequantizeLinear']


def test_equal_batches():
    from repvgg_mm.runtime.quantize import equal_batches
    batches = [np.full((16, 1, 2, 2), i, np.float32) for i in range(2)]
    batches.append(np.full((8, 1, 2, 2), 2, np.float32))
    equal = equal_batches(batches)
    assert [len(b) for b in equal] == [10] * 4
    np.testing.assert_array_equal(np.concatenate(equal),
                                  np.concatenate(batches))
    assert [len(b) for b in equal_batches([np.zeros((7, 1))])] == [7]
    assert [len(b) for b in equal_batches([np.zeros((17, 1))])] == [1] * 17


def test_failure_leaves_nothing(digits_root, trained, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    def broken(*args, **kwargs):
        raise RuntimeError('simulated failure inside quantize_static')

    monkeypatch.setattr(ortq, 'quantize_static', broken)
    with pytest.raises(RuntimeError, match='simulated'):
        quantize_model(CONFIG, trained, str(tmp_path / 'int8.onnx'),
                       backend='onnxruntime', calib=8,
                       cfg_options=_options(digits_root), progress=False)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------
# bad input: one clear error, exit 2, nothing written
def _bad(capsys, tmp_path, args, expected):
    code, _, err = call_tool('quantize', args, capsys)
    assert code == 2, err
    assert err.startswith('error: ') and len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err
    assert os.listdir(tmp_path) == []


def test_unknown_backend(digits_root, trained, tmp_path, capsys):
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.onnx'),
                            '--backend', 'tensorrt', *cfg_args(digits_root)],
         r'unknown backend "tensorrt"; use one of openvino, onnxruntime')


def test_wrong_suffix_and_method(digits_root, trained, tmp_path, capsys):
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.onnx'),
                            *cfg_args(digits_root)], r'must end with \.xml')
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.onnx'),
                            '--backend', 'onnxruntime', '--method',
                            'quantile'], r'unknown calibration method')


def test_split_that_does_not_exist(digits_root, trained, tmp_path, capsys):
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.xml'),
                            '--split', 'holdout', *cfg_args(digits_root)],
         r'unknown split "holdout"')
    # the config's train folder is missing
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.xml'),
                            '--cfg-options',
                            f'train_dataloader.dataset.data_root='
                            f'{tmp_path}/missing'],
         r'dataset path ".*missing" \(train_dataloader.dataset.data_root')


def test_eval_split_missing(digits_root, trained, tmp_path, capsys):
    # checked before anything is computed: no INT8 model without its figures
    _bad(capsys, tmp_path, [CONFIG, trained, str(tmp_path / 'q.xml'),
                            '--eval', *cfg_args(digits_root)[:2],
                            f'val_dataloader.dataset.data_root='
                            f'{tmp_path}/missing'],
         r'dataset path ".*missing" \(val_dataloader.dataset.data_root')


def test_no_calibration_data(digits_root, trained, tmp_path, capsys):
    empty = tmp_path / 'empty'
    for split in ('train', 'val'):
        (empty / split).mkdir(parents=True)
    out = tmp_path / 'out'
    out.mkdir()
    args = [CONFIG, trained, str(out / 'q.xml'), '--cfg-options',
            f'train_dataloader.dataset.data_root={empty}']
    code, _, err = call_tool('quantize', args, capsys)
    assert code == 2 and 'no calibration data' in err, err
    assert os.listdir(out) == []
    code, _, err = call_tool('quantize', [*args[:3], '--calib', '0'], capsys)
    assert code == 2 and '--calib must be a positive' in err, err


def test_config_without_dataloader(trained, tmp_path, capsys):
    config = tmp_path / 'bare.py'
    config.write_text(f"_base_ = ['{CONFIG}']\n"
                      "train_dataloader = None\nval_dataloader = None\n"
                      "test_dataloader = None\n")
    out = tmp_path / 'out'
    out.mkdir()
    code, _, err = call_tool('quantize', [str(config), trained,
                                          str(out / 'q.xml')], capsys)
    assert code == 2, err
    assert 'defines no train_dataloader with a dataset' in err, err
    assert 'add a dataset and dataloader to the config' in err
    assert os.listdir(out) == []


# ----------------------------------------------------------------------
# per-layer statistics
def test_weight_fake_quant_grid_and_outlier():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    w[0, 0, 1, 1] = 40.0  # one outlier in channel 0
    q = fake_quant_weight(w, per_channel=True)
    scale = w.reshape(4, -1).abs().amax(1) / W_QMAX
    steps = q / scale.view(4, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert float(steps.abs().max()) <= W_QMAX + 1e-4
    stats = kernel_stats(w)
    assert stats['w_max'] == pytest.approx(40.0)
    assert stats['w_range'] == pytest.approx(40.0 - float(w.min()))
    assert stats['w_std'] == pytest.approx(float(w.double().std()))
    # the outlier stretches one per-tensor scale over all channels
    assert stats['w_sqnr_per_channel_db'] > stats['w_sqnr_per_tensor_db'] + 6


def test_analyse_tiny_model():
    from repvgg_mm.models import RepVGGMM
    torch.manual_seed(0)

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = RepVGGMM(
                arch=dict(num_blocks=[1, 1, 1, 1],
                          width_factor=[0.125] * 4), in_channels=3,
                out_indices=(3, ), deploy=True)
            self.head = nn.Linear(64, 5)

        def forward(self, x):
            return self.head(self.backbone(x)[-1].mean((2, 3)))

    net = Net().eval()
    calib = [torch.rand(4, 3, 32, 32) for _ in range(2)]
    evals = [(torch.rand(8, 3, 32, 32), None)]
    result = analyse(net, calib, evals)
    rows = result['layers']
    assert len(rows) == 6  # stem + 4 stages + head
    assert [r['kind'] for r in rows][:2] == ['conv3x3/s2', 'conv3x3/s2']
    assert rows[-1]['kind'] == 'linear'
    for row in rows:
        # 8-bit weights and activations: 20-60 dB, never exact, never noise
        assert 20 < row['sqnr_isolated_db'] < 60, row
        assert 10 < row['sqnr_cumulative_db'] < 60, row
        assert row['act_min'] <= row['act_max']
    assert rows[0]['sqnr_cumulative_db'] == pytest.approx(
        rows[0]['sqnr_isolated_db'])
    assert rows[0]['act_min'] == pytest.approx(
        float(min(c.min() for c in calib)), abs=1e-6)
    assert 0.0 <= result['agreement'] <= 1.0
    assert result['num_eval_images'] == 8
    assert 'top1_fp32' not in result
    assert np.isfinite([r['w_std'] for r in rows]).all()
