"""tools/benchmark_fps.py and tools/plot_speed_accuracy.py on tiny configs.

The tools run in-process (``main(argv)`` through ``run_tool``) with one
thread, tiny inputs and one timed call per round, so the whole file takes
well under a minute on 2 cores.
"""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from conftest import REL_TOL, ROOT, call_tool

from harness.benchmark.complexity import complexity
from harness.benchmark.forms import deployed_form, fold_conv_bn
from harness.benchmark.paper import (accuracy_table, load_paper_results,
                                     paper_key)
from harness.benchmark.serving import Serving, parse_serving
from harness.benchmark.sources import BenchModel
from harness.fusion_check import randomize_norm_stats_
from repvgg_mm.io.checkpoint import atomic_save
from repvgg_mm.runtime.rounds import paired_ratios, summary
from repvgg_mm.utils.verify import relative_errors

TINY_ARCH = ("dict(num_blocks=[1, 2, 1, 1], "
             "width_factor=[0.125, 0.125, 0.125, 0.125])")
CLS_CFG = f"""
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepVGGMM', arch={TINY_ARCH}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
"""
SEG_CFG = f"""
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0., 0., 0.],
                           std=[1., 1., 1.]),
    backbone=dict(type='RepVGGMM', arch={TINY_ARCH}, out_indices=(2, 3),
                  strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4)),
    decode_head=dict(type='PSPHead', in_channels=64, in_index=1, channels=16,
                     pool_scales=(1, 2, 3, 6), num_classes=4,
                     norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss')),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""
RESNET_CFG = """
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
"""
FAST = ['--batch-size', '2', '--shape', '32', '32', '--warmup', '0',
        '--iters', '1', '--rounds', '2', '--threads', '1']


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _load_tool('benchmark_fps')
PLOT = _load_tool('plot_speed_accuracy')


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(tool, argv, capsys):
    """``(exit status, stdout, stderr)`` of a tool run in-process."""
    proc = call_tool(tool.__file__, *argv, capsys=capsys)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp('cfgs')
    paths = {}
    for name, text in (('tiny_cls', CLS_CFG), ('tiny_seg', SEG_CFG),
                       ('tiny_resnet', RESNET_CFG),
                       ('no_model', "default_scope = 'mmpretrain'\n")):
        paths[name] = folder / f'{name}.py'
        paths[name].write_text(text)
    return paths


def _row(model, form, serving='eager'):
    return next(r for r in model['rows']
                if (r['form'], r['serving']) == (form, serving))


def _check_timed(row):
    values = row['images_per_s']['values']
    assert len(values) == 2 and all(v > 0 for v in values)
    assert row['ms_per_batch']['median'] > 0


@pytest.mark.slow
def test_classifier_and_baseline_both_forms(configs, tmp_path, capsys,
                                            logged):
    out_json = tmp_path / 'fps.json'
    code, out, err = run(BENCH, [configs['tiny_cls'], '--baseline',
                                 configs['tiny_resnet'], *FAST,
                                 '--json', out_json], capsys)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record['settings'] == dict(rounds=2, warmup=0, iters=1,
                                      serving='eager', best=False, fp32=True)
    assert record['host']['torch_threads'] == 1
    cls, resnet = record['models']
    assert (cls['name'], cls['task'], cls['batch_size'], cls['shape']) == (
        'tiny_cls', 'classification', 2, [32, 32])
    for model in record['models']:
        assert [(r['form'], r['serving']) for r in model['rows']] == [
            ('train', 'eager'), ('deploy', 'eager')]
        for row in model['rows']:
            _check_timed(row)
            assert 0 < row['pct_of_ceiling'] <= 100 + 1e-9
            assert row['output_rel_err'] <= REL_TOL
        assert _row(model, 'train')['speedup_vs_train']['values'] == [1, 1]
        assert model['max_rel_err'] <= REL_TOL
    # RepVGG: 6 blocks fused; the deployed form has fewer params and MACs
    assert cls['deploy_steps'].startswith('6 RepVGG blocks re-parameterized')
    assert cls['params']['deploy'] < cls['params']['train']
    assert cls['macs']['deploy'] < cls['macs']['train']
    # ResNet-18 has no RepVGG block: its 20 conv+BN pairs are folded
    assert resnet['deploy_steps'] == '20 conv+BN pairs folded'
    # mmengine counts eval-mode BN as one MAC per element: folded, it is gone
    assert resnet['macs']['deploy'] < resnet['macs']['train']
    assert resnet['params']['deploy'] < resnet['params']['train']
    kinds = [c['kind'] for c in record['comparisons']]
    assert kinds == ['deployed vs training form'] * 2 + ['same serving']
    # the fp32 ceiling: a conv stack at the first model's dominant shape
    fp32 = record['ceiling']['per_precision']['fp32']
    assert fp32['macs_per_s'] > 1e7
    assert len(record['ceiling']['shape']) == 3
    # the table and the paired ratios are printed
    assert 'tiny_resnet' in out and 'deployed vs training form' in out
    assert any('round 2/2' in line for line in logged)  # progress


def test_segmentor_paper_protocol_override_and_best(configs, tmp_path,
                                                    capsys):
    out_json = tmp_path / 'seg.json'
    code, out, err = run(BENCH, [
        configs['tiny_seg'], *FAST[:2], '--shape', '64', '--warmup', '0',
        '--iters', '1', '--rounds', '2', '--threads', '1', '--best',
        '--candidates', 'eager', 'channels_last', 'channels_last+jit',
        '--json', out_json], capsys)
    assert code == 0, err
    (seg, ) = json.loads(out_json.read_text())['models']
    assert (seg['task'], seg['shape']) == ('segmentation', [64, 64])
    assert seg['deploy_steps'].startswith('6 RepVGG blocks')
    assert 'conv+BN pairs folded' in seg['deploy_steps']  # the PSP head
    assert seg['max_rel_err'] <= REL_TOL
    rows = {(r['form'], r['serving']): r for r in seg['rows']}
    assert set(rows) == {('train', 'eager'), ('deploy', 'eager'),
                         ('deploy', 'channels_last'),
                         ('deploy', 'channels_last+jit')}
    for key in (('train', 'eager'), ('deploy', 'eager'),
                ('deploy', 'channels_last')):
        _check_timed(rows[key])
        assert rows[key]['output_rel_err'] <= REL_TOL
    # a serving the model cannot run is reported, not fatal (TorchScript's
    # oneDNN rewrite breaks the PSP head's adaptive pooling)
    jit = rows[('deploy', 'channels_last+jit')]
    assert jit['error'] or 'images_per_s' in jit
    if jit['error']:
        assert 'images_per_s' not in jit and 'n/a' in out
        assert 'channels_last+jit could not run' in out
    fastest = max((r for r in seg['rows']
                   if r['form'] == 'deploy' and 'images_per_s' in r),
                  key=lambda r: r['images_per_s']['median'])
    assert seg['best'] == dict(serving=fastest['serving'],
                               images_per_s=fastest['images_per_s']['median'])
    assert 'fastest deployed serving' in out


def test_segmentation_default_protocol():
    from harness.benchmark.protocol import resolve
    assert resolve('segmentation') == (16, (713, 713))
    assert resolve('classification') == (128, (224, 224))
    assert resolve('classification', 8, (64, 48)) == (8, (64, 48))


@pytest.mark.parametrize('argv,message', [
    (['--amp', 'fp8'], "invalid choice: 'fp8'"),
    (['--iters', '0'], 'must be >= 1, got 0'),
    (['--shape', '1', '2', '3'], '--shape takes H W or one size'),
    (['--best', '--candidates', 'turbo'], 'unknown serving "turbo"'),
    (['--candidates', 'eager'], '--candidates only makes sense with --best'),
    (['--device', 'cuda:0'], 'CUDA is not available'),
])
def test_bad_options_exit_with_clear_error(configs, argv, message, capsys):
    if 'cuda' in argv[-1] and torch.cuda.is_available():
        pytest.skip('this check needs a machine without CUDA')
    code, _, err = run(BENCH, [configs['tiny_cls'], *argv], capsys)
    assert code == 2
    assert message in err


def test_config_without_model(configs, capsys):
    code, _, err = run(BENCH, [configs['no_model']], capsys)
    assert code == 2
    assert 'defines no "model"' in err


def test_missing_config_and_baseline(configs, tmp_path, capsys):
    code, _, err = run(BENCH, [tmp_path / 'nope.py'], capsys)
    assert (code, 'does not exist' in err) == (2, True)
    code, _, err = run(BENCH, [configs['tiny_cls'], '--baseline',
                               'mmpretrain::resnet/nope.py'], capsys)
    assert code == 2 and 'mmpretrain has no config "resnet/nope.py"' in err


def test_checkpoint_that_does_not_match(configs, tmp_path, capsys):
    wrong = tmp_path / 'wrong.pth'
    atomic_save({'state_dict': {'backbone.stem.bogus': torch.zeros(1)}},
                wrong)
    code, _, err = run(BENCH, [configs['tiny_cls'], wrong, *FAST], capsys)
    assert code == 2
    assert f'"{wrong}"' in err and 'would keep its initial weights' in err
    assert '1 unexpected keys: backbone.stem.bogus' in err
    assert 'missing keys: backbone.stem.branch_3x3.conv.weight' in err
    code, _, err = run(BENCH, [configs['tiny_cls'], tmp_path / 'absent.pth'],
                       capsys)
    assert code == 2 and 'does not exist' in err


def test_matching_checkpoint_is_loaded(configs, tmp_path, capsys):
    from harness.benchmark.sources import build_source
    model = build_source(str(configs['tiny_cls'])).model
    ckpt = tmp_path / 'ok.pth'
    atomic_save({'state_dict': model.state_dict()}, ckpt)
    out_json = tmp_path / 'ok.json'
    code, _, err = run(BENCH, [configs['tiny_cls'], ckpt, *FAST,
                               '--no-ceiling', '--json', out_json], capsys)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record['models'][0]['checkpoint'] == str(ckpt)
    assert record['ceiling'] is None


def test_conv_bn_folding_is_exact_and_a_wrong_pairing_is_refused():
    """mmcv's fuse_conv_bn folds a BN into the conv registered before it;
    where the conv's output is also read elsewhere that changes the function,
    and deployed_form refuses it instead of timing a different model."""

    class Net(nn.Module):

        def __init__(self, shared: bool):
            super().__init__()
            self.shared = shared
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=True)
            self.bn2 = nn.BatchNorm2d(8)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            y = self.conv2(x)
            return self.bn2(y) + y if self.shared else self.bn2(y)

    x = torch.randn(2, 3, 9, 7)
    net = randomize_norm_stats_(Net(shared=False), x)
    with torch.no_grad():
        ref = net(x)
        assert fold_conv_bn(net) == 2
        out = net(x)
    assert isinstance(net.bn1, nn.Identity) and isinstance(net.bn2,
                                                           nn.Identity)
    assert relative_errors(ref, out)[0][1] <= REL_TOL

    shared = randomize_norm_stats_(Net(shared=True), x)
    bench = BenchModel('shared', 'shared', shared, 'classification')
    with pytest.raises(RuntimeError, match='is not the same function as its '
                       'training form'):
        deployed_form(bench, x[:1])


def test_mmengine_flops_are_macs():
    conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
    result = complexity(conv, (10, 12))
    assert result.macs == 6 * 3 * 9 * 10 * 12
    assert result.params == 6 * 3 * 9


def test_serving_names_round_trip():
    for name in ('eager', 'channels_last', 'channels_last+jit', 'compile',
                 'channels_last+compile+bf16+1threads',
                 'channels_last+jit+chunk16'):
        assert parse_serving(name).name == name
    assert parse_serving('eager') == Serving()
    assert parse_serving('channels_last+chunk8').chunk == 8
    with pytest.raises(ValueError, match='exclude each other'):
        parse_serving('jit+compile')
    with pytest.raises(ValueError, match='unknown serving "chunk0"'):
        parse_serving('chunk0')


@pytest.mark.parametrize('name', ['chunk3', 'channels_last+jit+chunk4'])
def test_chunked_serving_gives_the_same_outputs(name):
    from harness.benchmark.serving import prepare

    class TwoHeads(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x).relu()
            return y, y.mean((2, 3))

    model = TwoHeads().eval()
    inputs = torch.randn(10, 3, 6, 5)  # 10 = 3 + 3 + 3 + 1: a short tail
    forward, _, _ = prepare(model, inputs, parse_serving(name))
    with torch.no_grad():
        expected = model(inputs)
        got = forward()
    assert [tuple(t.shape) for t in got] == [(10, 4, 6, 5), (10, 4)]
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() <= 1e-5


def test_paired_ratios_and_summary():
    s = summary([3.0, 1.0, 2.0])
    assert (s['median'], s['min'], s['max'], s['spread_pct']) == (2, 1, 3, 50)
    r = paired_ratios([2.0, 4.0, 6.0], [1.0, 2.0, 2.0])
    assert r['values'] == [2.0, 2.0, 3.0] and r['median'] == 2.0


def test_paper_results_match_reference():
    paper = load_paper_results()
    cls = paper['classification']
    a0, b0 = cls['RepVGG-A0'], cls['RepVGG-B0']
    assert (a0['top1'], a0['speed']) == (72.41, 3256)
    assert (b0['top1'], b0['speed']) == (75.14, 1817)
    assert cls['ResNet-18']['speed'] == 2442
    assert [cls[f'ResNet-{d}']['top1'] for d in (18, 34, 50, 101, 152)] == [
        71.16, 74.17, 76.31, 77.21, 77.78]
    assert paper['segmentation']['PSPNet RepVGG-B2']['miou'] == 80.57
    assert paper_key('repvgg-b1g2_8xb32_in1k') == 'RepVGG-B1g2'
    assert paper_key('timm:repvgg_a0') == 'RepVGG-A0'
    assert paper_key('resnet101_8xb32_in1k') == 'ResNet-101'
    assert paper_key('pspnet_repvgg-b2-fast-d8_8xb2-40e_cityscapes-713x713'
                     ) == 'PSPNet RepVGG-B2-fast'
    assert paper_key('pspnet_r50-d8_8xb2-40e_cityscapes-713x713') == \
        'PSPNet ResNet-50'


def _fake_record(path, models):
    record = dict(host=dict(cpu='test cpu', torch_threads=2), models=[
        dict(name=name, task='classification', batch_size=128,
             shape=[224, 224], rows=[
                 dict(form='train', serving='eager',
                      images_per_s=dict(median=speed / 2)),
                 dict(form='deploy', serving='eager',
                      images_per_s=dict(median=speed))])
        for name, speed in models])
    path.write_text(json.dumps(record))
    return path


def test_plot_writes_png_with_user_accuracy(tmp_path, capsys):
    record = _fake_record(tmp_path / 'r.json', [
        ('repvgg-a0_8xb32_in1k', 60.0), ('repvgg-b0_8xb32_in1k', 30.0),
        ('resnet18_8xb32_in1k', 40.0), ('mystery_net', 10.0)])
    user = tmp_path / 'acc.json'
    user.write_text(json.dumps({'RepVGG-A0': {'top1': 70.5}}))
    png = tmp_path / 'plot.png'
    code, out, err = run(PLOT, [record, '--accuracy', user, '--out', png],
                         capsys)
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
    assert 'RepVGG-A0' in out and '70.50' in out  # user's figure wins
    assert 'RepVGG-B0' in out and '75.14' in out  # the paper's
    assert 'skipping mystery_net: no accuracy' in err


def test_plot_bad_inputs(tmp_path, capsys):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"not": "a record"}')
    code, _, err = run(PLOT, [bad, '--out', tmp_path / 'x.png'], capsys)
    assert code == 2 and 'not a tools/benchmark_fps.py JSON record' in err
    record = _fake_record(tmp_path / 'r.json', [('mystery_net', 10.0)])
    code, _, err = run(PLOT, [record, '--out', tmp_path / 'x.png'], capsys)
    assert code == 2 and 'no model' in err
    code, _, err = run(PLOT, [record, '--out', tmp_path / 'x.jpg'], capsys)
    assert code == 2 and 'ending in .png' in err
    assert not (tmp_path / 'x.png').exists()
    with pytest.raises(ValueError, match='must map to a number'):
        user = tmp_path / 'acc.json'
        user.write_text('{"RepVGG-A0": "high"}')
        accuracy_table('classification', str(user))


def test_rounds_rotate_the_order_and_time_every_entry():
    from repvgg_mm.runtime.rounds import Entry, run_rounds
    calls = []
    entries = [Entry(name, (lambda n=name: calls.append(n)), 1)
               for name in 'abc']
    seconds = run_rounds(entries, rounds=3, warmup=1, iters=2, device='cpu',
                         verbose=False)
    assert {k: len(v) for k, v in seconds.items()} == dict(a=3, b=3, c=3)
    firsts = calls[::3 * 3]  # each entry: 1 warm-up + 2 timed calls
    assert firsts == ['a', 'b', 'c']


def test_block_activations_run_in_place_in_both_forms(configs):
    from harness.benchmark.forms import (deployed_form,
                                         inplace_block_activations_)
    from harness.benchmark.sources import build_source
    from repvgg_mm.models.repvgg_block import RepVGGBlock
    bench = build_source(str(configs['tiny_cls']))
    inplace_block_activations_(bench.model)
    x = torch.randn(2, 3, 32, 32)
    randomize_norm_stats_(bench.model, x)
    deployed = deployed_form(bench, x)
    for model in (bench.model, deployed.model):
        acts = [m.act for m in model.modules() if isinstance(m, RepVGGBlock)]
        assert len(acts) == 6 and all(a.inplace for a in acts)
    assert deployed.max_rel_err <= REL_TOL  # with non-trivial BN statistics


def test_runtime_servings_and_bf16(configs, tmp_path, capsys, monkeypatch):
    out_json = tmp_path / 'rt.json'
    code, out, err = run(BENCH, [
        configs['tiny_cls'], *FAST, '--no-ceiling', '--best', '--candidates',
        'onnxruntime', 'openvino', 'openvino-bf16', 'channels_last+bf16',
        '--json', out_json], capsys)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    from repvgg_mm.runtime import supports_bf16
    features = record['host']['cpu_features']
    assert set(features['flags']) <= {'avx2', 'avx512f', 'avx512_vnni',
                                      'avx512_bf16', 'amx_tile', 'amx_bf16',
                                      'amx_int8'}
    assert supports_bf16() == bool({'avx512_bf16', 'amx_bf16'}
                                   & set(features['flags']))
    (cls, ) = record['models']
    rows = {r['serving']: r for r in cls['rows'] if r['form'] == 'deploy'}
    # fp32 runtimes: the same function
    for name in ('onnxruntime', 'openvino'):
        _check_timed(rows[name])
        assert rows[name]['output_rel_err'] <= REL_TOL
    for name in ('openvino-bf16', 'channels_last+bf16'):
        if supports_bf16():  # close to fp32, and the difference reported
            _check_timed(rows[name])
            assert 0 < rows[name]['output_rel_err'] < 5e-2
        else:
            assert 'no native bf16' in rows[name]['skipped']
            assert 'skipped' in out
    assert 'rel. err' in out and 'CPU features' in out
    # every timed runtime serving against torch fp32 eager, round by round
    versus = {c['sides'][0]['serving']: c for c in record['comparisons']
              if c['kind'] == 'serving vs default serving'}
    timed = {name for name, row in rows.items()
             if 'images_per_s' in row and name != 'eager'}
    assert set(versus) == timed and {'onnxruntime', 'openvino'} <= timed
    for name, comparison in versus.items():
        assert comparison['sides'][1] == dict(
            model=cls['name'], form='deploy', serving='eager')
        ratios = [a / b for a, b in zip(
            rows[name]['images_per_s']['values'],
            rows['eager']['images_per_s']['values'])]
        assert comparison['ratio']['values'] == pytest.approx(ratios)
    # a CPU without bf16 skips the bf16 servings with a note
    monkeypatch.setattr('repvgg_mm.utils.cpu.supports_bf16', lambda: False)
    code, out, err = run(BENCH, [
        configs['tiny_cls'], *FAST, '--no-ceiling', '--best', '--candidates',
        'openvino-bf16', 'channels_last+bf16'], capsys)
    assert code == 0, err
    # once each in the report (the log, when captured, says it too)
    assert sum('skipped, this CPU has no native bf16' in line and
               ' - mmengine - ' not in line
               for line in out.splitlines()) == 2


def test_runtime_serving_names_and_best_candidates():
    from harness.benchmark.serving import candidates
    for name in ('onnxruntime', 'openvino', 'openvino-bf16',
                 'onnxruntime+2threads'):
        assert parse_serving(name).name == name
    # the earlier spelling is accepted, the one name is what is written
    assert parse_serving('ort-int8').name == 'onnxruntime-int8'
    with pytest.raises(ValueError, match='combines only with'):
        parse_serving('channels_last+onnxruntime')
    names = [s.name for s in candidates(torch.device('cpu'), Serving())]
    assert {'onnxruntime', 'openvino'} <= set(names)
    from repvgg_mm.runtime import supports_bf16
    assert ('openvino-bf16' in names) == supports_bf16()
    assert ('channels_last+bf16' in names) == supports_bf16()


@pytest.mark.slow
def test_int8_servings_run_and_report_their_difference(configs, tmp_path):
    # a process of its own: NNCF quantizing inside the pytest process made a
    # later subprocess start crash it (see tests/test_quantize.py)
    import subprocess
    import sys
    out_json = tmp_path / 'int8.json'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'benchmark_fps.py'),
         str(configs['tiny_cls']), *FAST, '--no-ceiling',
         '--best', '--candidates', 'onnxruntime-int8', 'openvino-int8',
         '--json', str(out_json)], capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (cls, ) = json.loads(out_json.read_text())['models']
    rows = {r['serving']: r for r in cls['rows'] if r['form'] == 'deploy'}
    for name in ('onnxruntime-int8', 'openvino-int8'):
        _check_timed(rows[name])
        # INT8 is not the same function: a difference, but a small one
        assert 1e-4 < rows[name]['output_rel_err'] < 0.5
    assert 'calibrated on random inputs' in proc.stdout
    # not offered by --best on its own: an INT8 model is another function
    from harness.benchmark.serving import candidates
    names = [s.name for s in candidates(torch.device('cpu'), Serving())]
    assert not {'onnxruntime-int8', 'openvino-int8'} & set(names)
