"""Multi-process runs on GPUs or CPUs, and the Runner's orderly teardown."""
import contextlib
import gc
import os
import subprocess
import traceback
from typing import Iterator

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ..errors import ConfigError


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` for (Distributed)DataParallel-style wrappers."""
    return model.module if is_model_wrapper(model) else model


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
    """Prepare a multi-process run (a no-op for ``launcher='none'``):
    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` for every
    launcher, so without a GPU this initialises a gloo group itself and
    wraps the model with ``device_ids=None``."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
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
    """Run a body that keeps a Runner in its own frame, then collect the
    Runner and destroy the process group, in that order: a DDP wrapper kept
    alive by reference cycles until interpreter shutdown made gloo abort
    the process now and then (SIGABRT, "terminate called without an active
    exception"; torch 2.14.1, tests/stress_dist_exit.py)."""
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
