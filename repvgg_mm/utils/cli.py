"""Shared plumbing of the command-line tools: clear errors, config loading,
the flags every Runner tool takes.

A tool's ``main`` raises :class:`ToolError` (or :class:`CheckpointError`) with
one paragraph that names the problem and the fix; :func:`run_tool` prints it
as ``error: ...`` and exits with status 2 instead of a deep traceback.
"""
import argparse
import os
import sys
from typing import Callable, Optional, Sequence


class ToolError(Exception):
    """An error a user can fix; its message says how."""


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]],
             argv: Optional[Sequence[str]] = None) -> None:
    from ..io.checkpoint import CheckpointError
    try:
        code = main(argv)
    except (ToolError, CheckpointError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def load_config(path: str, cfg_options: Optional[dict] = None):
    """``mmengine.Config.fromfile`` with clear errors for common mistakes.

    A missing file, a syntax error and a missing ``_base_`` file get one
    paragraph; any other error inside the config's own code surfaces as it
    is, with its traceback.
    """
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise ToolError(
            f'config file "{path}" does not exist. Configs live in configs/, '
            f'e.g. configs/repvgg-a0_8xb32_in1k.py.')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise ToolError(
            f'config "{path}" is not valid Python: {exc}') from None
    except FileNotFoundError as exc:  # a _base_ file that does not exist
        raise ToolError(f'cannot read config "{path}": {exc}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ToolError(f'config "{path}" defines no "model"; is it a model '
                        f'config (not a _base_ fragment)?')
    return cfg


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``tools/train.py`` and ``tools/test.py`` (OpenMMLab's)."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir',
                        help='where logs and checkpoints go (default: '
                        './work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=64 model.backbone.arch=b1')
    parser.add_argument('--launcher',
                        choices=('none', 'pytorch', 'slurm', 'mpi'),
                        default='none',
                        help='job launcher (the dist_*/slurm_* scripts set '
                        'it)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='unpickle the checkpoint (train: --resume or load_from) fully '
        'instead of weights-only; this runs any code stored in it, so only '
        'for old checkpoints from a source you trust')
    parser.add_argument(
        '--check-only', action='store_true',
        help='only check the config, arch, dataset paths and checkpoint, '
        'then exit (the dist_* scripts run this once before launching)')


def runner_options(args: argparse.Namespace) -> dict:
    """The :func:`add_runner_args` flags as keyword arguments of
    :func:`repvgg_mm.apis.train_model` / :func:`repvgg_mm.apis.test_model`."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return dict(work_dir=args.work_dir, cfg_options=args.cfg_options,
                launcher=args.launcher)
