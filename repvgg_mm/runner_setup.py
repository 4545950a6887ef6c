"""What ``tools/train.py`` and ``tools/test.py`` share: from arguments to an
mmengine ``Runner``, for classification (mmpretrain) and segmentation
(mmseg) configs alike -- the scope comes from the config's ``default_scope``.

* :func:`train_parser` / :func:`test_parser`: the usual OpenMMLab flags.
* :func:`config_for_training` / :func:`config_for_testing`: load the config
  (clear errors), apply the flags, and check what would otherwise fail deep
  inside mmengine (unknown RepVGG arch, missing dataset folders, missing
  checkpoint) with one paragraph naming the fix.
* :func:`setup_distributed`: CPU runs use the gloo backend. mmengine 0.10.7's
  ``init_dist`` calls ``torch.cuda.set_device`` for the pytorch, slurm and
  mpi launchers (REFERENCE §6), so without a GPU the process group is
  initialised here, before the Runner is built (the Runner then skips its
  own initialisation), and the model is wrapped with ``device_ids=None``.
  With GPUs nothing changes: mmengine initialises nccl itself.
* :func:`runner_session`: frees the Runner before the process group is
  destroyed, so no rank aborts at exit.
"""
import argparse
import contextlib
import gc
import os
import os.path as osp
import pickle
import subprocess
import traceback
from typing import Iterable, Iterator, List, Sequence, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .models.arch import parse_arch
from .utils.cli import ToolError, load_config

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: where the README explains how to prepare a dataset type
DATASET_DOCS = {
    'ImageNet': 'README.md ("Preparing ImageNet")',
    'CityscapesDataset':
    'README.md ("Preparing Cityscapes")',
}


# ----------------------------------------------------------------------
# arguments
def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir',
                        help='where logs and checkpoints go (default: '
                        './work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=64 model.backbone.arch=b1')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher (the dist_*/slurm_* scripts set '
                        'it)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--check-only', action='store_true',
        help='only check the config, arch, dataset paths and checkpoint, '
        'then exit (the dist_* scripts run this once before launching)')


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Train a model (mmpretrain or mmseg config) with a '
        'RepVGG backbone.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CHECKPOINT, or without a value from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision training (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr linearly with the real batch size '
                        '(auto_scale_lr.base_batch_size of the config)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    _common_args(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint (mmpretrain or mmseg config).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out',
                        help='also dump the predictions to this .pkl file')
    _common_args(parser)
    return parser


# ----------------------------------------------------------------------
# config
def _load(args) -> Config:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    check_repvgg_archs(cfg)
    return cfg


def _has_amp_device() -> bool:
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def config_for_training(args) -> Config:
    """The config of ``tools/train.py``, flags applied and inputs checked."""
    cfg = _load(args)
    if args.amp:
        if not _has_amp_device():
            raise ToolError(
                '--amp (mixed precision, AmpOptimWrapper) needs a GPU (or '
                'NPU/MLU/MUSA) and none was found. Drop --amp to train in '
                'fp32 on this machine.')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ToolError(
                f'--amp replaces optim_wrapper.type by AmpOptimWrapper, but '
                f'the config uses "{wrapper}". Drop --amp and configure '
                f'mixed precision in the config.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise ToolError(
                f'--resume checkpoint "{args.resume}" does not exist. Give '
                f'an epoch_N.pth/iter_N.pth of the work dir, or --resume '
                f'without a value to pick the latest one automatically.')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ToolError(
                f'--auto-scale-lr needs "auto_scale_lr = dict('
                f'base_batch_size=...)" in the config "{args.config}".')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    check_dataset_paths(cfg, loaders)
    return cfg


def config_for_testing(args) -> Config:
    """The config of ``tools/test.py``, flags applied and inputs checked."""
    cfg = _load(args)
    if not osp.isfile(args.checkpoint):
        raise ToolError(
            f'checkpoint "{args.checkpoint}" does not exist. Give the .pth '
            f'written by tools/train.py (work_dirs/<config>/epoch_N.pth) or '
            f'a converted one.')
    cfg.load_from = None  # loaded strictly by load_checkpoint_strictly
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ToolError(f'--out "{args.out}" must end with .pkl or '
                            f'.pickle (the predictions are pickled).')
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='DumpResults', out_file_path=args.out)
        ]
    check_dataset_paths(cfg, ['test_dataloader'])
    return cfg


def _configs_of_type(node, type_name: str) -> Iterable[dict]:
    if isinstance(node, dict):
        if node.get('type') == type_name:
            yield node
        for value in node.values():
            yield from _configs_of_type(value, type_name)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _configs_of_type(value, type_name)


def check_repvgg_archs(cfg: Config) -> None:
    """Every ``RepVGGMM`` of the model has a valid ``arch``."""
    for backbone in _configs_of_type(cfg.get('model'), 'RepVGGMM'):
        try:
            parse_arch(backbone.get('arch', 'a0'))
        except (ValueError, TypeError) as exc:
            raise ToolError(
                f'{exc} Fix model.backbone.arch in "{cfg.filename}" (or '
                f'--cfg-options model.backbone.arch=NAME).') from None


def _dataset_leaves(dataset) -> Iterable[dict]:
    """The datasets inside wrappers (RepeatDataset, ConcatDataset, ...)."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            yield from _dataset_leaves(item)
    elif isinstance(dataset, dict):
        inner = dataset.get('dataset', dataset.get('datasets'))
        if inner is not None:
            yield from _dataset_leaves(inner)
        else:
            yield dataset


def _required_paths(dataset: dict) -> List[Tuple[str, str]]:
    """(what, path) pairs a dataset config reads from disk."""
    root = dataset.get('data_root') or ''
    paths = []
    if root:
        paths.append(('data_root', root))
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(('ann_file', osp.join(root, ann_file)))
    prefix = dataset.get('data_prefix')
    prefixes = (prefix.items() if isinstance(prefix, dict) else
                [('data_prefix', prefix)])
    for key, value in prefixes:
        if isinstance(value, str) and value:
            paths.append((f'data_prefix.{key}' if key != 'data_prefix' else
                          key, osp.join(root, value)))
    split = dataset.get('split')
    if root and split and not prefix and not ann_file:
        paths.append(('split', osp.join(root, split)))  # mmpretrain ImageNet
    return paths


def _how_to_prepare(dataset_type) -> str:
    doc = DATASET_DOCS.get(str(dataset_type).split('.')[-1])
    return f'as described in {doc}' if doc else 'the config expects'


def check_dataset_paths(cfg: Config, loaders: Sequence[str]) -> None:
    """The folders/files the given dataloaders read exist."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for dataset in _dataset_leaves(loader_cfg.get('dataset')):
            for what, path in _required_paths(dataset):
                if not osp.exists(path):
                    raise ToolError(
                        f'dataset path "{path}" ({loader}.dataset.{what}, '
                        f'{dataset.get("type")}) does not exist (relative '
                        f'paths start at the working directory '
                        f'"{os.getcwd()}"). Prepare the dataset '
                        f'{_how_to_prepare(dataset.get("type"))}, or point '
                        f'the config at it, e.g. --cfg-options '
                        f'{loader}.dataset.data_root=/path/to/data.')


# ----------------------------------------------------------------------
# distributed
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
            raise ToolError('--launcher mpi needs MASTER_ADDR (the address '
                            'of rank 0) in the environment.')
    env.setdefault('MASTER_PORT', '29500')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR')
               if k not in env]
    if missing:
        raise ToolError(
            f'--launcher {launcher} needs {", ".join(missing)} in the '
            f'environment; start the job with tools/dist_train.sh (torchrun) '
            f'or tools/slurm_train.sh instead of calling the tool directly.')


def setup_distributed(cfg: Config) -> None:
    """Prepare a multi-process run; a no-op for ``launcher='none'``."""
    launcher = cfg.launcher
    if launcher == 'none':
        return
    count, kind = available_devices()
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if kind == 'GPUs':
        if local_rank >= count:
            raise ToolError(
                f'local rank {local_rank} has no GPU: this machine has '
                f'{count}. Start at most {count} processes per node (the '
                f'GPUS argument of tools/dist_train.sh).')
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


# ----------------------------------------------------------------------
# runner
def build_runner(cfg: Config):
    """``Runner.from_cfg`` after the distributed set-up."""
    from mmengine.runner import Runner
    setup_distributed(cfg)
    return Runner.from_cfg(cfg)


def load_checkpoint_strictly(runner, checkpoint: str, config: str) -> None:
    """Load every weight of ``checkpoint`` into the runner's model, or fail.

    mmengine's test path loads non-strictly: a checkpoint that does not fit
    the model would leave random weights with only a warning (REFERENCE §6).
    A training-form checkpoint loads into a deploy-form model (the blocks
    fuse it while loading); a deploy-form one into a training-form model
    raises.
    """
    try:
        runner.load_checkpoint(checkpoint, map_location='cpu', strict=True)
    except (RuntimeError, KeyError, pickle.UnpicklingError, EOFError) as exc:
        detail = str(exc).strip().replace('\n', ' ')
        if len(detail) > 600:
            detail = detail[:600] + ' ...'
        raise ToolError(
            f'checkpoint "{checkpoint}" does not fit the model of config '
            f'"{config}": {detail} Use the config the checkpoint was trained '
            f'with, or its configs/deploy/*_deploy.py counterpart for a '
            f'converted checkpoint.') from None


@contextlib.contextmanager
def runner_session() -> Iterator[None]:
    """Run a tool's body, then free its Runner and tear the process group
    down, in that order.

    The model's ``DistributedDataParallel`` wrapper holds a reference to the
    process group, and the Runner <-> loop reference cycles keep the wrapper
    alive until the interpreter's final garbage collection. The gloo group
    was then destroyed during interpreter shutdown, and now and then its
    worker threads aborted the process ("terminate called without an active
    exception", SIGABRT, exit code -6; torch 2.14.1: a ``dist_test.sh``
    run in CI that had already printed its metrics, and 2 of 60 runs of
    ``tests/stress_dist_exit.py`` under CPU load). So the body must keep the Runner in its own frame
    (not the caller's), and here it is collected while the group is still
    alive; the group is destroyed afterwards.
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
