"""Issue 18: nothing a tool writes destroys a file or passes a bad result.

One test per class of the hostile-user run: outputs that are inputs or
whose sidecar is someone else's file, special files and /proc links,
unwritable places, a full disk (a tiny tmpfs mounted under the test's own
temp dir), NaN anywhere in the outputs or weights, opsets the exporter or
runtime cannot serve, configs that cannot be fused, what a runtime
session is fed, and a kill during a ``max_keep_ckpts=1`` save. Each
asserts the exit status (or exception), the message and the files left.
Tools run in-process (``main`` through ``harness.cli.run_tool``).
"""
import contextlib
import errno
import os
import os.path as osp
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import ROOT
from conftest import call_tool as conftest_call_tool
from test_convert_deploy import CLASSIFIER_CFG, trained_checkpoint, write

from repvgg_mm.errors import (CheckpointError, ConfigError, OutputError,
                              VerificationError)
from repvgg_mm.io.atomic import atomic_files, atomic_write_json
from repvgg_mm.io.checkpoint import atomic_save
from repvgg_mm.io.output_guard import Output, guard_output, guard_outputs
from repvgg_mm.models import RepVGGMM
from repvgg_mm.utils.verify import (check_finite_weights, verify_outputs,
                                    worst_errors)


def call_tool(name, args, capsys):
    """``tools/<name>.py ARGS`` in this process: (exit status, stderr)."""
    proc = conftest_call_tool(f'{name}.py', *args, capsys=capsys)
    return proc.returncode, proc.stderr


def listing(folder):
    return sorted(os.listdir(folder))


@contextlib.contextmanager
def tmpfs(path, options):
    """A private tmpfs at ``path`` (under the test's temp dir); skips with
    the reason where this machine cannot mount one."""
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs',
                           str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here ({proc.stderr.strip()}); '
                    f'test_full_disk_fault_injection covers the message')
    try:
        yield str(path)
    finally:
        subprocess.run(['umount', '-l', str(path)], check=False)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny classifier config and a training checkpoint of it."""
    folder = tmp_path_factory.mktemp('tiny')
    cfg = write(folder / 'tiny_cls.py', CLASSIFIER_CFG)
    _, ckpt = trained_checkpoint(cfg, folder / 'epoch_3.pth')
    return cfg, ckpt


# ------------------------------------------------------------ data loss
@pytest.mark.parametrize('case', ['input', 'sidecar_is_input',
                                  'foreign_sidecar', 'fifo', 'char_device',
                                  'proc_link', 'folder', 'under_file',
                                  'same_outputs'])
def test_guard_refuses_before_any_work(tmp_path, case):
    ckpt = tmp_path / 'X.bin'
    ckpt.write_bytes(b'weights')
    inputs = {'CHECKPOINT': str(ckpt)}
    out, sidecars, expected = str(tmp_path / 'out.pth'), (), None
    if case == 'input':
        out, expected = str(ckpt), 'would overwrite the input CHECKPOINT'
    elif case == 'sidecar_is_input':  # X.xml writes X.bin
        out, sidecars = str(tmp_path / 'X.xml'), (str(ckpt), )
        expected = 'would overwrite the input CHECKPOINT'
    elif case == 'foreign_sidecar':  # OUT.py of OUT.pth, OUT.pth missing
        (tmp_path / 'out.py').write_text('mine = 1\n')
        sidecars = (str(tmp_path / 'out.py'), )
        expected = 'was not written with'
    elif case == 'fifo':
        os.mkfifo(out)
        expected = 'is a FIFO'
    elif case == 'char_device':  # a private node, never the system's
        try:
            os.mknod(out, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError as exc:
            pytest.skip(f'mknod of a device is not permitted here: {exc}')
        expected = 'is a character device'
    elif case == 'proc_link':
        out, expected = f'/proc/self/fd/{sys.stdout.fileno()}', '/proc'
    elif case == 'folder':
        out, expected = str(tmp_path), 'is a folder'
    elif case == 'under_file':
        out, expected = str(ckpt / 'sub' / 'x.pth'), 'is a file, not a folder'
    before = listing(tmp_path)
    if case == 'same_outputs':
        with pytest.raises(OutputError, match='are the same file'):
            guard_outputs([Output(out, 'OUT'), Output(out, '--json')])
    else:
        with pytest.raises(OutputError, match=expected):
            guard_output(out, 'OUT', inputs, sidecars)
    assert listing(tmp_path) == before
    assert ckpt.read_bytes() == b'weights'


@pytest.mark.parametrize('path, kind', [('/dev/zero', 'character device'),
                                        (None, 'folder')])
def test_checkpoint_that_is_not_a_file_is_named(tmp_path, path, kind):
    from repvgg_mm.io.checkpoint import load_checkpoint_file
    with pytest.raises(CheckpointError, match=f'is a {kind}, not a regular'):
        load_checkpoint_file(path or str(tmp_path))


def test_read_only_place_is_refused(tmp_path):
    with tmpfs(tmp_path / 'ro', 'size=64k,ro') as ro:
        with pytest.raises(OutputError, match='Read-only file system'):
            guard_output(osp.join(ro, 'new', 'x.pth'))
        with pytest.raises(OutputError, match='no file can be created'):
            guard_output(osp.join(ro, 'work'), '--work-dir', folder=True)


def test_convert_keeps_a_foreign_out_py(tiny, tmp_path, capsys):
    cfg, ckpt = tiny
    mine = tmp_path / 'deploy.py'
    mine.write_text('my own script\n')
    code, err = call_tool('convert_deploy', [cfg, ckpt,
                                             tmp_path / 'deploy.pth'],
                          capsys)
    assert code == 2 and 'was not written with' in err, err
    assert '--out-config' not in err or 'Remove or rename' in err
    assert mine.read_text() == 'my own script\n'
    assert listing(tmp_path) == ['deploy.py']
    # --out-config not .py, and equal to the checkpoint
    for extra, message in ((['--out-config', tmp_path / 'c.txt'],
                            'must end with .py'),
                           (['--out-config', cfg], 'input CONFIG')):
        code, err = call_tool('convert_deploy', [cfg, ckpt,
                                                 tmp_path / 'o.pth'] + extra,
                              capsys)
        assert code == 2 and message in err, err
    assert listing(tmp_path) == ['deploy.py']


def test_quantize_never_overwrites_its_checkpoint(tiny, tmp_path, capsys):
    cfg, ckpt = tiny
    before = open(ckpt, 'rb').read()
    code, err = call_tool('quantize', [cfg, ckpt, ckpt, '--backend',
                                       'onnxruntime'], capsys)
    assert code == 2 and 'must end with .onnx' in err, err
    onnx_ckpt = tmp_path / 'm.onnx'
    onnx_ckpt.write_bytes(before)
    code, err = call_tool('quantize', [cfg, onnx_ckpt, onnx_ckpt,
                                       '--backend', 'onnxruntime'], capsys)
    assert code == 2 and 'would overwrite the input CHECKPOINT' in err, err
    fifo = tmp_path / 'r.json'
    os.mkfifo(fifo)
    code, err = call_tool('quantize', [cfg, ckpt, tmp_path / 'q.onnx',
                                       '--backend', 'onnxruntime', '--json',
                                       fifo], capsys)
    assert code == 2 and '--json' in err and 'FIFO' in err, err
    assert open(ckpt, 'rb').read() == before
    assert listing(tmp_path) == ['m.onnx', 'r.json']


def test_killed_multi_file_write_is_cleaned_by_the_next(tmp_path):
    script = ('import os, sys\n'
              'from repvgg_mm.io.atomic import atomic_files\n'
              'with atomic_files([sys.argv[1] + ".bin", sys.argv[1] + '
              '".xml"]) as tmps:\n'
              '    open(tmps[0], "wb").write(b"x")\n'
              '    os.kill(os.getpid(), 9)\n')
    proc = subprocess.run([sys.executable, '-c', script,
                           str(tmp_path / 'm')],
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == -9
    assert len(listing(tmp_path)) == 1  # the killed write's folder
    atomic_write_json({}, str(tmp_path / 'a.json'))
    assert listing(tmp_path) == ['a.json']


# ------------------------------------------------------------ full disk
def test_full_disk_is_named_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / 'small', 'size=256k') as small:
        big = {'w': torch.zeros(2**20 // 4)}  # 1 MiB
        with pytest.raises(OutputError, match='the disk is full'):
            atomic_save(big, osp.join(small, 'new', 'deeper', 'x.pth'))
        with pytest.raises(OutputError, match='MiB free'):
            atomic_write_json(['x' * 100] * 10**4, osp.join(small, 'a.json'))
        with pytest.raises(OutputError, match='the disk is full'):
            with atomic_files([osp.join(small, 'm.bin'),
                               osp.join(small, 'm.xml')]) as tmps:
                for tmp in tmps:
                    with open(tmp, 'wb') as f:
                        f.write(b'x' * 2**19)
        assert listing(small) == []  # no file, no temporary, no folder


def test_full_disk_fault_injection(tmp_path, monkeypatch):
    """The same message where no tmpfs can be mounted: the write path
    raises ENOSPC (as ``write(2)`` does), and torch's errno-less wrapper."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(OutputError, match='the disk is full'):
        atomic_save({}, str(tmp_path / 'sub' / 'x.pth'))
    assert listing(tmp_path) == []


@pytest.mark.parametrize('tool, out', [('convert_deploy', 'deploy.pth'),
                                       ('export', 'm.onnx'),
                                       ('export', 'm.xml')])
def test_full_disk_during_a_tool_is_one_error(tiny, tmp_path, capsys, tool,
                                              out):
    cfg, ckpt = tiny
    with tmpfs(tmp_path / 'small', 'size=24k') as small:
        code, err = call_tool(tool, [cfg, ckpt, osp.join(small, 'out', out)],
                              capsys)
        assert code == 2 and 'the disk is full' in err, err
        assert 'opset' not in err and 'Traceback' not in err
        assert listing(small) == []


# ------------------------------------------------------------ NaN
def test_nan_in_a_later_output_fails_verify():
    ones = torch.ones(2, 3)
    bad = ones.clone()
    bad[1, 2] = float('nan')
    errors = [(0.0, 0.0), (float('nan'), float('nan'))]
    assert np.isnan(worst_errors(errors)[1])  # Python max() would say 0.0
    with pytest.raises(VerificationError, match='boxes of the exported.*NaN'):
        verify_outputs([ones, ones], [ones, bad], names=['scores', 'boxes'],
                       forms=('the reference', 'the exported model'))
    inf = ones.clone()
    inf[0, 0] = float('inf')
    with pytest.raises(VerificationError, match='output 1 of the training '
                       'form holds Inf'):
        verify_outputs([ones, inf], [ones, ones])
    assert verify_outputs([ones, ones], [ones, ones * (1 + 1e-6)])[1] < 1e-5


def test_nan_weights_are_refused_before_running(tiny, tmp_path, capsys):
    cfg, ckpt = tiny
    checkpoint = torch.load(ckpt, weights_only=False)
    key = 'backbone.stage_2.0.branch_3x3.conv.weight'
    checkpoint['state_dict'][key][0, 0, 0, 0] = float('nan')
    bad = str(tmp_path / 'nan.pth')
    torch.save(checkpoint, bad)
    for tool, out in (('convert_deploy', 'o.pth'), ('export', 'o.onnx')):
        code, err = call_tool(tool, [cfg, bad, tmp_path / out, '--verify'],
                              capsys)
        assert code == 2, err
        assert ('has NaN in layer backbone.stage_2.0.branch_3x3.conv'
                in err), err
    assert listing(tmp_path) == ['nan.pth']
    with pytest.raises(CheckpointError, match='"meta" is a str'):
        check_finite_weights({'meta': 'x'}, 'c.pth')


# ------------------------------------------------------------ ONNX
def test_opset_out_of_range_is_refused_up_front(tiny, tmp_path, capsys):
    cfg, _ = tiny
    for opset in (5, 99):  # the checkpoint does not even exist
        code, err = call_tool('export', [cfg, tmp_path / 'missing.pth',
                                         tmp_path / 'm.onnx', '--opset',
                                         opset], capsys)
        assert code == 2 and f'--opset {opset} is not supported' in err
        assert 'opsets 7 to 20' in err, err
    assert listing(tmp_path) == []


def test_invalid_onnx_is_not_kept(tmp_path, monkeypatch):
    import onnx

    from repvgg_mm.runtime import onnx_export
    real_save = onnx.save

    def broken_save(model, path):  # a graph the checker refuses
        model.graph.node[0].op_type = 'NoSuchOp'
        real_save(model, path)

    monkeypatch.setattr(onnx, 'save', broken_save)
    module = torch.nn.Conv2d(3, 4, 3)
    from repvgg_mm.io.atomic import atomic_output
    out = str(tmp_path / 'm.onnx')
    with pytest.raises(VerificationError, match='onnx.checker'):
        with atomic_output(out) as tmp:
            onnx_export.export_onnx(module, torch.rand(1, 3, 8, 8), tmp,
                                    ['y'], metadata={'a': 'b'})
    assert listing(tmp_path) == []


# ------------------------------------------------------------ configs
@pytest.mark.parametrize('option, message', [
    ('model.backbone.norm_cfg.type=GN', "'GN' cannot be fused"),
    ('model.backbone.frozen_stages=10', 'frozen_stages must be in'),
    ('model.backbone.out_indices=[7]', 'out_indices must be in'),
])
def test_bad_backbone_fails_before_any_work(tiny, tmp_path, capsys, option,
                                            message):
    cfg, ckpt = tiny
    code, err = call_tool('convert_deploy', [cfg, ckpt, tmp_path / 'o.pth',
                                             '--cfg-options', option],
                          capsys)
    assert code == 2 and message in err, err
    assert err.count('error:') == 1
    assert listing(tmp_path) == []
    with pytest.raises(ConfigError, match=message.split(' ')[0]):
        RepVGGMM(**{'norm_cfg': dict(type='GN', num_groups=2)}
                 if 'GN' in option else {'frozen_stages': 10}
                 if 'frozen' in option else {'out_indices': (7, )})


def test_train_checks_work_dir_and_backbone(tiny, tmp_path, capsys):
    cfg, _ = tiny
    blocker = tmp_path / 'file'
    blocker.write_text('')
    code, err = call_tool('train', [cfg, '--check-only', '--work-dir',
                                    blocker], capsys)
    assert code == 2 and '--work-dir' in err and 'is a file' in err, err
    assert listing(tmp_path) == ['file']


# ------------------------------------------------------------ sessions
def test_session_checks_what_it_is_fed(tmp_path):
    from repvgg_mm.runtime import open_session
    from repvgg_mm.runtime.onnx_export import export_onnx
    path = str(tmp_path / 'm.onnx')
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten())
    export_onnx(model, torch.rand(1, 3, 16, 16) * 255, path, ['scores'],
                metadata={'input': 'images: float32 (N, C, H, W), 0-255'})
    for backend in ('ort', 'openvino'):
        session = open_session(path, backend)
        for images, message in (
                (np.zeros((1, 16, 16, 3)), 'looks like NHWC'),
                (np.zeros((3, 16, 16)), r'images\[None\]'),
                (np.zeros((1, 3, 8, 8)), 'has height 8'),
                (np.zeros((1, 3, 16, 16), bool), 'the images are bool')):
            with pytest.raises(ConfigError, match=message):
                session(images)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            session(np.random.rand(1, 3, 16, 16))
            session(np.random.rand(1, 3, 16, 16))
        assert [str(w.message)[:22] for w in caught] == [
            'the images are in 0-1 ']
        # the runtimes' own errors, past the checks: one message for both
        session.input_shape = (None, ) * 4
        with pytest.raises(ConfigError, match='does not fit the graph'):
            session(np.zeros((1, 3, 8, 8), np.float32))


# ------------------------------------------------------------ checkpoints
KILLED_SAVE = '''
import os, sys
import torch
import repvgg_mm
from repvgg_mm.apis.train import train, training_config
cfg = training_config(sys.argv[1], work_dir=sys.argv[2], validate=False,
                      resume=sys.argv[4] if len(sys.argv) > 4 else None,
                      cfg_options={'train_cfg.max_epochs': 2,
                                   'default_hooks.checkpoint.max_keep_ckpts':
                                   1})
if sys.argv[3] == 'kill':  # die inside the second save, mid-write
    import mmengine.runner.checkpoint as ckpt
    real = ckpt.save_checkpoint
    def dying(checkpoint, filename, *args, **kwargs):
        if os.path.basename(filename) == 'epoch_2.pth':
            os.kill(os.getpid(), 9)
        return real(checkpoint, filename, *args, **kwargs)
    ckpt.save_checkpoint = dying
    import mmengine.runner.runner as runner_module
    runner_module.save_checkpoint = dying
train(cfg)
'''


@pytest.mark.slow
def test_kill_during_a_keep_one_save_leaves_a_resumable_work_dir(
        tmp_path):
    from conftest import write_probed_cls_config
    config, _ = write_probed_cls_config(str(tmp_path))
    work = str(tmp_path / 'work')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.join(ROOT, 'tests'), ROOT]))
    proc = subprocess.run([sys.executable, '-c', KILLED_SAVE, config, work,
                           'kill'], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert 'epoch_1.pth' in os.listdir(work)  # mmengine 0.10.7 deleted it
    proc = subprocess.run([sys.executable, '-c', KILLED_SAVE, config, work,
                           'resume', 'auto'], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [n for n in os.listdir(work) if n.endswith('.pth')]
    assert names == ['epoch_2.pth']  # one kept, the old one removed after


def test_test_tool_predictions_dump_is_atomic(tmp_path, monkeypatch):
    """``tools/test.py --out``: mmengine's DumpResults writes in place; ours
    leaves the old file whole when the dump fails, and no temporary."""
    import pickle

    from repvgg_mm.engine import atomic_writes
    out = tmp_path / 'preds.pkl'
    metric = atomic_writes.AtomicDumpResults(out_file_path=str(out))
    metric.process({}, [{'pred': torch.ones(2)}])
    assert metric.compute_metrics(metric.results) == {}
    with open(out, 'rb') as f:
        assert torch.equal(pickle.load(f)[0]['pred'], torch.ones(2))
    before = out.read_bytes()

    def full_disk(obj, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half')
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(atomic_writes, 'dump', full_disk)
    with pytest.raises(OutputError, match='disk is full|No space'):
        metric.compute_metrics(metric.results)
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ['preds.pkl']
