"""Issue 13: nothing lost, nothing misleading.

Gradient checkpointing, TorchScript, hostile checkpoints, interrupted
writes, output paths, permissions, resume with augmentation, CPU bf16.
"""
import copy
import os

import pytest
import torch

from repvgg_mm.models import RepVGGBlock, RepVGGMM

TINY_ARCH = dict(num_blocks=[1, 1, 1, 1], width_factor=[0.125] * 4)


# ---------------------------------------------------------------- with_cp
@pytest.mark.parametrize('se_ratio', [None, 4])
def test_with_cp_updates_norm_statistics_once(se_ratio):
    torch.manual_seed(0)
    plain = RepVGGBlock(8, 8, se_ratio=se_ratio).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    losses = []
    for block in (plain, checkpointed):
        loss = block(x).square().sum()
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == losses[1]
    ref, got = plain.state_dict(), checkpointed.state_dict()
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    assert int(got['branch_3x3.norm.num_batches_tracked']) == 1
    for (name, p), q in zip(plain.named_parameters(),
                            checkpointed.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_with_cp_backbone_matches_plain_backbone():
    torch.manual_seed(0)
    plain = RepVGGMM(arch=TINY_ARCH).train()
    checkpointed = RepVGGMM(arch=TINY_ARCH, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    for model in (plain, checkpointed):
        model(x)[0].sum().backward()
    ref, got = plain.state_dict(), checkpointed.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert all(torch.equal(p.grad, q.grad) for p, q in
               zip(plain.parameters(), checkpointed.parameters()))


# ------------------------------------------------------------ TorchScript
@pytest.mark.slow
@pytest.mark.parametrize('arch', [TINY_ARCH, 'd2se'])
@pytest.mark.parametrize('deploy', [False, True])
def test_script_and_trace_both_forms(arch, deploy):
    torch.manual_seed(0)
    model = RepVGGMM(arch=arch, out_indices=(1, 3)).eval()
    if deploy:
        model.switch_to_deploy()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.script(model)(x)
        traced = torch.jit.trace(model, x)(x)
    assert len(scripted) == len(traced) == len(expected) == 2
    for want, a, b in zip(expected, scripted, traced):
        assert torch.equal(a, want)
        assert torch.equal(b, want)


# ------------------------------------------------- hostile checkpoint files
class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ('touch PWNED',))


@pytest.mark.parametrize('writer', ['torch', 'pickle'])
def test_code_running_pickle_is_named_not_corrupt(tmp_path, monkeypatch,
                                                  writer):
    import pickle

    from repvgg_mm.io.checkpoint import CheckpointError, load_checkpoint_file
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / 'evil.pth')
    obj = {'state_dict': {'w': torch.zeros(2)}, 'x': _RunsCode()}
    if writer == 'torch':
        torch.save(obj, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(obj, f)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert 'posix.system' in message and '`unsafe_load=True`' in message
    assert 'could run arbitrary code' in message
    assert 'corrupt' not in message and 'truncated' not in message
    assert not (tmp_path / 'PWNED').exists()


def test_truncated_checkpoint_is_corrupt(tmp_path):
    from repvgg_mm.io.checkpoint import CheckpointError, load_checkpoint_file
    path = tmp_path / 'cut.pth'
    torch.save({'w': torch.zeros(1000)}, str(path))
    path.write_bytes(path.read_bytes()[:900])
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        load_checkpoint_file(str(path))


# ------------------------------------------------------- atomic writer
def test_atomic_files_get_umask_permissions(tmp_path):
    import os

    from repvgg_mm.io.atomic import atomic_write_json
    old = os.umask(0o022)
    try:
        atomic_write_json({'a': 1}, str(tmp_path / 'a.json'))
    finally:
        os.umask(old)
    assert (tmp_path / 'a.json').stat().st_mode & 0o777 == 0o644


KILLED_WRITER = '''
import os, sys
from repvgg_mm.io.atomic import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    with open(tmp, 'wb') as f:
        f.write(b'x' * 1000)
        f.flush()
        os.kill(os.getpid(), 9)
'''


def test_killed_write_leaves_nothing_the_next_write_keeps(tmp_path):
    import os
    import subprocess
    import sys

    from repvgg_mm.io.atomic import TMP_PREFIX, atomic_write_json
    target = str(tmp_path / 'out.pth')
    proc = subprocess.run([sys.executable, '-c', KILLED_WRITER, target],
                          env=dict(os.environ))
    assert proc.returncode == -9
    assert not os.path.exists(target)
    left = [n for n in os.listdir(tmp_path) if n.startswith(TMP_PREFIX)]
    assert len(left) == 1  # recognisable by its name
    atomic_write_json({}, str(tmp_path / 'other.json'))
    assert sorted(os.listdir(tmp_path)) == ['other.json']


KILLED_CHECKPOINT_SAVE = '''
import os, sys, threading, time
import torch
import repvgg_mm  # registers the atomic_local backend
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint
target = sys.argv[1]
def kill_when_writing():
    while not any('.tmp-' in n for n in os.listdir(os.path.dirname(target))):
        time.sleep(0.001)
    os.kill(os.getpid(), 9)
threading.Thread(target=kill_when_writing, daemon=True).start()
big = {'w': torch.zeros(64 * 2**20 // 4)}  # 64 MiB
for _ in range(50):
    save_checkpoint(big, target, backend_args=dict(backend='atomic_local'))
'''


def test_training_checkpoint_killed_mid_save_is_not_left_truncated(
        tmp_path):
    import os
    import subprocess
    import sys
    target = str(tmp_path / 'epoch_1.pth')
    proc = subprocess.run([sys.executable, '-c', KILLED_CHECKPOINT_SAVE,
                           target], env=dict(os.environ), timeout=120)
    assert proc.returncode == -9
    assert not os.path.exists(target)  # killed before the first rename


# ------------------------------------------------------- output paths
@pytest.mark.parametrize('where', ['under_file', 'proc', 'folder'])
def test_output_path_checked_before_work(tmp_path, where):
    from repvgg_mm.errors import OutputError
    from repvgg_mm.io.output_guard import guard_output
    (tmp_path / 'file').write_text('')
    out = {'under_file': str(tmp_path / 'file' / 'sub' / 'x.pth'),
           'proc': '/proc/repvgg_mm_test/x.pth',
           'folder': str(tmp_path)}[where]
    with pytest.raises(OutputError, match='OUT'):
        guard_output(out)
    guard_output(str(tmp_path / 'new' / 'deeper' / 'x.pth'))
    assert sorted(os.listdir(tmp_path)) == ['file']  # the check creates none


def test_convert_checks_out_before_loading(tmp_path):
    from repvgg_mm.apis.convert import convert_checkpoint
    from repvgg_mm.errors import OutputError
    (tmp_path / 'file').write_text('')
    with pytest.raises(OutputError, match='is a file, not a folder'):
        # the checkpoint does not exist: the OUT check comes first
        convert_checkpoint('configs/repvgg-a0_8xb32_in1k.py',
                           str(tmp_path / 'missing.pth'),
                           str(tmp_path / 'file' / 'x.pth'))


# ------------------------------------------------------- per-epoch seeds
def test_epoch_seed_hook_reseeds_by_epoch():
    import random
    from types import SimpleNamespace

    from repvgg_mm.engine.hooks import EpochSeedHook
    from repvgg_mm.engine.hooks.epoch_seed_hook import epoch_seed
    runner = SimpleNamespace(seed=0, epoch=2,
                             train_dataloader=SimpleNamespace(num_workers=0))
    draws = []
    for _ in range(2):  # an uninterrupted run vs. one resumed at epoch 2
        random.random(), torch.rand(3)
        EpochSeedHook().before_train_epoch(runner)
        draws.append((random.random(), torch.rand(3)))
    assert draws[0][0] == draws[1][0]
    assert torch.equal(draws[0][1], draws[1][1])
    assert epoch_seed(0, 2) != epoch_seed(0, 3)


# ------------------------------------------------------- CPU training
def test_fp32_channels_last_training_is_refused_with_the_reason():
    block = RepVGGBlock(3, 8, stride=2).train()
    x = torch.randn(1, 3, 8, 8).to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match='oneDNN.*torch 2.14.1'):
        block(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        block(x).float().sum().backward()  # bf16: allowed
    block.eval()
    with torch.no_grad():
        block(x)  # inference: allowed
