"""tools/train.py, tools/test.py and the dist_* scripts, end to end on CPU.

A tiny RepVGG (widths 8..64, one block per stage) trains on a tiny synthetic
image folder (2 classes x 8 images, 32x32 PNGs written here) through
mmpretrain's CustomDataset, with the real configs/repvgg-a0_8xb32_in1k.py as
base (so its schedule and weight-decay rules are the ones exercised).
"""
import os
import os.path as osp
import pickle
import re
import weakref

import pytest
import torch
from conftest import (IMAGES_PER_CLASS, REL_TOL, ROOT, call_tool,
                      ddp_held_by_a_cycle, run_tool, write_probed_cls_config)

from repvgg_mm.io.checkpoint import load_checkpoint_file

TESTS = osp.dirname(osp.abspath(__file__))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
DIST_TRAIN = osp.join(ROOT, 'tools', 'dist_train.sh')
DIST_TEST = osp.join(ROOT, 'tools', 'dist_test.sh')
A0 = osp.join(ROOT, 'configs', 'repvgg-a0_8xb32_in1k.py')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """(config path, probe dir) of a tiny classification run."""
    return write_probed_cls_config(str(tmp_path_factory.mktemp('tiny')))


def assert_clean_error(proc, *fragments):
    """Non-zero exit, one ``error:`` paragraph naming the fix, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert proc.stderr.startswith('error: '), proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def load_probe(probe, rank):
    return torch.load(osp.join(probe, f'probe_rank{rank}.pt'),
                      weights_only=False)


# ----------------------------------------------------------------------
# flags -> config (in process)
def test_train_flags_are_applied(monkeypatch, tmp_path):
    from repvgg_mm.apis import train as train_api
    from repvgg_mm.apis.train import training_config
    from repvgg_mm.errors import ConfigError
    from repvgg_mm.models import RepVGGMM
    monkeypatch.setattr(train_api, '_has_amp_device', lambda: False)
    monkeypatch.setattr(train_api, 'supports_bf16', lambda: False)
    with pytest.raises(ConfigError,
                       match='`amp=True` found no GPU .* no native'):
        training_config(A0, amp=True)
    monkeypatch.setattr(train_api, 'supports_bf16', lambda: True)
    data = {'train_dataloader.dataset.data_root': ROOT,
            'train_dataloader.dataset.split': 'configs'}
    cfg = training_config(A0, amp=True, validate=False, cfg_options=data)
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    monkeypatch.setattr(train_api, '_has_amp_device', lambda: True)
    cfg = training_config(
        A0, amp=True, resume='auto', auto_scale_lr=True, work_dir='wd',
        cfg_options={'train_dataloader.dataset.data_root': ROOT,
                     'val_dataloader.dataset.data_root': ROOT,
                     'train_dataloader.dataset.split': 'configs',
                     'val_dataloader.dataset.split': 'tools'})
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr == dict(base_batch_size=256, enable=True)
    assert cfg.work_dir == 'wd' and cfg.launcher == 'none'

    # a resume checkpoint is read and checked against the model up front
    model = RepVGGMM(arch='a0')
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model.state_dict().items()}}, ckpt)
    with pytest.raises(Exception, match='weights do not match .* missing '
                       'keys: head.fc.weight'):
        training_config(A0, resume=ckpt, validate=False, cfg_options={
            'train_dataloader.dataset.data_root': ROOT,
            'train_dataloader.dataset.split': 'configs'})
    with pytest.raises(Exception, match='corrupt or truncated'):
        training_config(A0, resume=A0, validate=False, cfg_options=data)
    head = torch.nn.Linear(1280, 1000)
    torch.save({'state_dict': {
        **{f'backbone.{k}': v for k, v in model.state_dict().items()},
        'head.fc.weight': head.weight, 'head.fc.bias': head.bias}}, ckpt)
    cfg = training_config(
        A0, resume=ckpt, validate=False,
        cfg_options={'train_dataloader.dataset.data_root': ROOT,
                     'train_dataloader.dataset.split': 'configs'})
    assert cfg.resume is True and cfg.load_from == ckpt
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend='atomic_local')
    assert [h['type'] for h in cfg.custom_hooks] == ['EpochSeedHook']
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.work_dir == osp.join('./work_dirs', 'repvgg-a0_8xb32_in1k')


# ----------------------------------------------------------------------
# bad input: one clear paragraph, exit status 2, no traceback
def test_wrong_config_path(tmp_path, capsys):
    missing = str(tmp_path / 'repvgg-a9.py')
    assert_clean_error(call_tool(TRAIN, missing, capsys=capsys),
                       f'config file "{missing}" does not exist',
                       'configs/repvgg-a0_8xb32_in1k.py')
    assert_clean_error(run_tool(DIST_TRAIN, missing, '1'),
                       f'config file "{missing}" does not exist')


def test_missing_dataset_directory(tmp_path, monkeypatch, capsys):
    # relative data_root "data/imagenet" resolved in an empty folder
    monkeypatch.chdir(tmp_path)
    proc = call_tool(TRAIN, A0, '--work-dir', tmp_path, capsys=capsys)
    assert_clean_error(proc, 'dataset path "data/imagenet" '
                       '(train_dataloader.dataset.data_root, ImageNet) does '
                       'not exist', 'Preparing ImageNet',
                       '--cfg-options train_dataloader.dataset.data_root=')
    assert not os.listdir(tmp_path)  # nothing written

    ckpt = tmp_path / 'fake.pth'
    ckpt.write_bytes(b'x')
    proc = call_tool(TEST, A0, ckpt, capsys=capsys)
    assert_clean_error(proc, 'dataset path "data/imagenet" '
                       '(test_dataloader.dataset.data_root, ImageNet)')


def test_unknown_arch(capsys):
    proc = call_tool(TRAIN, A0, '--cfg-options', 'model.backbone.arch=a9',
                     capsys=capsys)
    assert_clean_error(proc, 'unknown RepVGG arch "a9"', 'a0, a1, a2',
                       'Fix model.backbone.arch')


def test_missing_checkpoint(tiny, tmp_path, capsys):
    config, _ = tiny
    missing = str(tmp_path / 'epoch_9.pth')
    assert_clean_error(call_tool(TEST, config, missing, capsys=capsys),
                       f'checkpoint "{missing}" does not exist')
    assert_clean_error(run_tool(DIST_TEST, config, missing, '1'),
                       f'checkpoint "{missing}" does not exist')


@pytest.mark.slow
def test_more_processes_than_the_machine_has(tiny):
    config, _ = tiny
    if torch.cuda.is_available():
        avail, kind = torch.cuda.device_count(), 'GPUs'
    else:  # what `nproc` counts
        avail, kind = len(os.sched_getaffinity(0)), 'CPU cores'
    too_many = str(avail + 1)
    proc = run_tool(DIST_TRAIN, config, too_many)
    assert_clean_error(proc, f'GPUS={too_many} processes were asked for',
                       f'it has only {avail} {kind}', f'Use GPUS <= {avail}',
                       'NNODES')
    proc = run_tool(DIST_TEST, config, config, too_many)
    assert_clean_error(proc, f'GPUS={too_many} processes were asked for')
    assert_clean_error(run_tool(DIST_TRAIN, config, 'two'),
                       'GPUS must be a positive number')


# ----------------------------------------------------------------------
# single process: train, test, deploy-form test of the same checkpoint
def test_deploy_checkpoint_into_train_model_is_a_clear_error(tiny, tmp_path):
    """In process: tools/test.py's own steps; the strict load into a
    meta-device model fails before any Runner (or work dir) exists."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from repvgg_mm import switch_to_deploy
    from repvgg_mm.apis.test import test_config
    from repvgg_mm.io.checkpoint import CheckpointError
    config, _ = tiny
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(config).model)
    ckpt = str(tmp_path / 'deploy.pth')
    torch.save({'state_dict': switch_to_deploy(model).state_dict()}, ckpt)
    with pytest.raises(CheckpointError) as error:
        test_config(config, ckpt, work_dir=str(tmp_path / 'work'))
    message = str(error.value)
    assert message.startswith(f'cannot load "{ckpt}"')
    assert 'deploy-form (fused) weight' in message
    assert '_deploy.py' in message
    assert not (tmp_path / 'work').exists()


def test_slurm_scripts_pass_the_job_to_srun(tmp_path):
    """slurm_train.sh / slurm_test.sh with a stand-in ``srun`` that records
    its arguments and environment."""
    srun = tmp_path / 'srun'
    srun.write_text('#!/usr/bin/env bash\n'
                    'echo "MASTER_PORT=$MASTER_PORT $*" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    log = tmp_path / 'srun.log'
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', SRUN_LOG=str(log),
               PYTHON='python3',
               GPUS='16', PORT='29123', SRUN_ARGS='--quotatype=auto')
    proc = run_tool('slurm_train.sh', 'part', 'job', A0, 'work', '--amp',
                    env=env)
    assert proc.returncode == 0, proc.stderr
    line = log.read_text().split()
    assert line[0] == 'MASTER_PORT=29123'
    assert line[1:9] == ['-p', 'part', '--job-name=job', '--gres=gpu:8',
                         '--ntasks=16', '--ntasks-per-node=8',
                         '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert line[9] == '--quotatype=auto'
    assert line[10:] == ['python3', '-u', TRAIN, A0, '--work-dir=work',
                         '--amp', '--launcher=slurm']
    proc = run_tool('slurm_test.sh', 'part', 'job', A0, A0, env=env)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split()[12:] == [TEST, A0, A0, '--launcher=slurm']


def test_cpu_rank_environment_from_slurm_and_mpi(monkeypatch):
    from repvgg_mm.engine.distributed import _env_from_launcher
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('MASTER_ADDR', 'node7')
    monkeypatch.setenv('SLURM_PROCID', '5')
    monkeypatch.setenv('SLURM_NTASKS', '16')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    _env_from_launcher('slurm')
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK',
                                    'MASTER_ADDR', 'MASTER_PORT')] == [
                                        '5', '16', '1', 'node7', '29500']
    monkeypatch.setenv('OMPI_COMM_WORLD_RANK', '3')
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '4')
    monkeypatch.setenv('OMPI_COMM_WORLD_LOCAL_RANK', '0')
    _env_from_launcher('mpi')
    assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')] == [
        '3', '4', '0']


@pytest.mark.parametrize('fails', [False, True])
def test_runner_teardown_frees_the_model_before_the_process_group(
        fails, tmp_path, monkeypatch):
    """A DDP wrapper still alive at interpreter exit destroyed the gloo group
    during shutdown, and a rank aborted now and then (SIGABRT, "terminate
    called without an active exception"). runner_teardown collects it first,
    also when the tool fails."""
    import torch.distributed as torch_dist

    from repvgg_mm.engine import distributed
    from repvgg_mm.errors import ConfigError
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    events = []
    destroy = torch_dist.destroy_process_group

    def recording_destroy(*args, **kwargs):
        events.append('group destroyed')
        destroy(*args, **kwargs)

    monkeypatch.setattr(distributed.torch_dist, 'destroy_process_group',
                        recording_destroy)

    def body():  # like tools/test.py's evaluate(): the frame holds the model
        owner = ddp_held_by_a_cycle(torch.nn.Conv2d(1, 1, 1))
        weakref.finalize(owner['model'], events.append, 'model freed')
        if fails:
            raise ConfigError('checkpoint does not fit')
        assert owner['model'].module.weight.numel() == 1

    try:
        with distributed.runner_teardown():
            body()
    except ConfigError as exc:
        assert fails and str(exc) == 'checkpoint does not fit'
    else:
        assert not fails
    assert events == ['model freed', 'group destroyed']
    assert not torch_dist.is_initialized()


# ----------------------------------------------------------------------
# two CPU processes through the real tools/dist_train.sh (torchrun + gloo)
@pytest.fixture(scope='module')
def dist_run(tiny, tmp_path_factory):
    config, probe = tiny
    work = str(tmp_path_factory.mktemp('dist_work'))
    proc = run_tool(DIST_TRAIN, config, '2', '--work-dir', work,
                    env=dict(PORT='29617'), check=True)
    return work, [load_probe(probe, r) for r in (0, 1)], proc


@pytest.mark.slow
def test_dist_ranks_hold_identical_weights(dist_run):
    _, (rank0, rank1), _ = dist_run
    # in each epoch, each rank trained on its own half of the data ...
    assert rank0['images'].keys() == rank1['images'].keys() == {0, 1}
    for epoch in (0, 1):
        seen0, seen1 = rank0['images'][epoch], rank1['images'][epoch]
        assert len(seen0) == len(seen1) == IMAGES_PER_CLASS
        assert len(set(seen0) | set(seen1)) == 2 * IMAGES_PER_CLASS
    assert rank0['final_iter'] == rank1['final_iter'] == 8  # 2 epochs x 4
    # ... and both ended with bit-identical parameters: gradients were
    # all-reduced (without DDP the halves would give different weights).
    assert rank0['params'].keys() == rank1['params'].keys()
    assert len(rank0['params']) > 20
    for name, value in rank0['params'].items():
        assert torch.equal(value, rank1['params'][name]), name
    # and training moved them away from the saved epoch-1 weights
    ckpt = load_checkpoint_file(osp.join(dist_run[0], 'epoch_1.pth'))
    moved = [k for k, v in rank0['params'].items()
             if not torch.equal(v, ckpt['state_dict'][k])]
    assert len(moved) > 20


@pytest.mark.slow
def test_dist_rank0_alone_writes_checkpoints_and_logs(dist_run):
    work, (rank0, rank1), _ = dist_run
    writes = rank0['checkpoint_writes']
    # (mmengine saves epoch_N.pth again when epoch N set a new best score)
    assert {f for f in writes if f.startswith('epoch_')} == {
        'epoch_1.pth', 'epoch_2.pth'
    }
    # save_best='auto' of the runtime: best-accuracy checkpoints, also rank 0
    assert all(f.startswith(('epoch_', 'best_accuracy_top1_epoch_'))
               for f in writes)
    assert rank1['checkpoint_writes'] == []
    on_disk = [f for f in os.listdir(work) if f.endswith('.pth')]
    assert set(on_disk) <= set(writes)
    assert {'epoch_1.pth', 'epoch_2.pth'} <= set(on_disk)
    runs = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d))]
    assert len(runs) == 1  # one timestamp folder: rank 0's
    logs = [f for f in os.listdir(osp.join(work, runs[0]))
            if f.endswith('.log')]
    assert logs == [f'{runs[0]}.log']
    with open(osp.join(work, runs[0], logs[0])) as f:
        log = f.read()
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert 'Epoch(train) [2][4/4]' in log


@pytest.mark.slow
def test_dist_resume_continues_iteration_and_optimizer_state(dist_run, tiny):
    work, _, _ = dist_run
    config, probe = tiny
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    proc = run_tool(DIST_TRAIN, config, '2', '--work-dir', work, '--resume',
                    '--cfg-options', 'train_cfg.max_epochs=3',
                    env=dict(PORT='29618'), check=True)
    assert 'resumed epoch: 2, iter: 8' in proc.stdout + proc.stderr
    for rank in (0, 1):
        resumed = load_probe(probe, rank)['resumed']
        assert (resumed['iter'], resumed['epoch']) == (8, 2)
        assert ckpt['meta']['iter'] == 8
        saved = ckpt['optimizer']
        assert resumed['optimizer']['param_groups'] == saved['param_groups']
        assert resumed['optimizer']['state'].keys() == saved['state'].keys()
        assert len(saved['state']) > 20
        for idx, state in saved['state'].items():
            assert torch.equal(resumed['optimizer']['state'][idx]
                               ['momentum_buffer'], state['momentum_buffer'])
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))


def _top1(output):
    found = re.findall(r'accuracy/top1: ([0-9.]+)', output)
    assert len(found) == 1, output[-3000:]
    return float(found[0])


@pytest.mark.slow
def test_test_tool_and_dist_test_in_deploy_form(dist_run, tiny, tmp_path):
    """test.py (training form) and dist_test.sh (2 CPU ranks, deploy form,
    the training checkpoint fused while loading) give the same predictions."""
    work, _, _ = dist_run
    config, _ = tiny
    ckpt = osp.join(work, 'epoch_2.pth')
    outs, top1 = {}, {}
    for name, cmd in (
            ('train', [TEST, config, ckpt]),
            ('deploy', [DIST_TEST, config, ckpt, '2', '--cfg-options',
                        'model.backbone.deploy=True'])):
        out = str(tmp_path / f'{name}.pkl')
        proc = run_tool(*cmd, '--work-dir', tmp_path / name, '--out', out,
                        env=dict(PORT='29619'), check=True)
        top1[name] = _top1(proc.stdout + proc.stderr)
        with open(out, 'rb') as f:
            outs[name] = {r['img_path']: r for r in pickle.load(f)}
    assert top1['train'] == top1['deploy']
    assert len(outs['train']) == len(outs['deploy']) == 2 * IMAGES_PER_CLASS
    for path, a in outs['train'].items():
        b = outs['deploy'][path]
        ref, conv = a['pred_score'], b['pred_score']
        err = (ref - conv).abs().max().item() / ref.abs().max().item()
        assert err < REL_TOL, (path, err)
        assert int(a['pred_label']) == int(b['pred_label'])
