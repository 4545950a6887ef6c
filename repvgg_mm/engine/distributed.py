"""Multi-process runs on GPUs or CPUs, and the Runner's orderly teardown.

* :func:`setup_distributed`: CPU runs use the gloo backend. mmengine 0.10.7's
  ``init_dist`` calls ``torch.cuda.set_device`` for the pytorch, slurm and
  mpi launchers (``mmengine/dist/utils.py``, ``_init_dist_pytorch``), so
  without a GPU the process group is initialised here, before the Runner is
  built (the Runner then skips its own initialisation), and the model is
  wrapped with ``device_ids=None``. With GPUs nothing changes: mmengine
  initialises nccl itself.
* :func:`build_runner`: ``Runner.from_cfg`` after that set-up.
* :func:`runner_teardown`: frees the Runner before the process group is
  destroyed, so no rank aborts at exit.
* :func:`unwrap_model`: the model inside a DDP / mmengine wrapper.
"""
import contextlib
import gc
import os
import subprocess
import traceback
from typing import Iterator, Tuple

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ..errors import ConfigError

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` for (Distributed)DataParallel-style wrappers."""
    return model.module if is_model_wrapper(model) else model


def available_devices() -> Tuple[int, str]:
    """(how many ranks this machine can run, what they are)."""
    if torch.cuda.is_available():
        return torch.cuda.device_count(), 'GPUs'
    return os.cpu_count() or 1, 'CPU cores'


def _env_from_launcher(launcher: str) -> None:
    """RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* for ``init_method='env://'``."""
    env = os.environ
    if launcher == 'slurm':
        env['RANK'] = env['SLURM_PROCID']
        env['WORLD_SIZE'] = env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')
    elif launcher == 'mpi':
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env['OMPI_COMM_WORLD_LOCAL_RANK']
        if 'MASTER_ADDR' not in env:
            raise ConfigError('launcher="mpi" needs MASTER_ADDR (the '
                              'address of rank 0) in the environment.')
    env.setdefault('MASTER_PORT', '29500')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR')
               if k not in env]
    if missing:
        raise ConfigError(
            f'launcher="{launcher}" needs {", ".join(missing)} in the '
            f'environment; start the processes with torchrun or srun (as '
            f'tools/dist_train.sh and tools/slurm_train.sh do).')


def setup_distributed(cfg) -> None:
    """Prepare a multi-process run; a no-op for ``launcher='none'``."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    count, kind = available_devices()
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if kind == 'GPUs':
        if local_rank >= count:
            raise ConfigError(
                f'local rank {local_rank} has no GPU: this machine has '
                f'{count}. Start at most {count} processes per node.')
        return  # mmengine initialises nccl (env_cfg.dist_cfg) itself
    if not torch_dist.is_initialized():
        _env_from_launcher(launcher)
        torch_dist.init_process_group(backend='gloo', init_method='env://')
    wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
    wrapper_cfg['device_ids'] = None  # CPU modules: no device placement
    # mmengine's own default (used on GPUs): each rank keeps its BN buffers
    wrapper_cfg.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper_cfg


def build_runner(cfg):
    """``Runner.from_cfg`` after the distributed set-up."""
    setup_distributed(cfg)
    return Runner.from_cfg(cfg)


@contextlib.contextmanager
def runner_teardown() -> Iterator[None]:
    """Run a body that uses a Runner, then free the Runner and tear the
    process group down, in that order.

    The model's ``DistributedDataParallel`` wrapper holds a reference to the
    process group, and the Runner <-> loop reference cycles keep the wrapper
    alive until the interpreter's final garbage collection. The gloo group
    was then destroyed during interpreter shutdown, and now and then its
    worker threads aborted the process ("terminate called without an active
    exception", SIGABRT, exit code -6; torch 2.14.1, seen in 2 of 60 runs of
    ``tests/stress_dist_exit.py`` under CPU load). So the body must keep the
    Runner in its own frame (not the caller's), and here it is collected
    while the group is still alive; the group is destroyed afterwards.
    """
    try:
        yield
    except BaseException as exc:
        # the traceback's finished frames would keep the Runner alive
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        gc.collect()
        if torch_dist.is_available() and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
