"""The command-line layer: how a tool reports errors, and the flags every
Runner tool takes.

The package raises :class:`repvgg_mm.errors.RepVGGMMError` (and its
subclasses) in terms of its API's arguments, each written `name` or
`name=value`; a tool's ``main`` raises :class:`ToolError` for problems with
its own flags. :func:`run_tool` prints either as one ``error: ...``
paragraph (the package's argument names turned into the tool's flags) and
exits with status 2 instead of a deep traceback.
"""
import argparse
import os
import re
import sys
from typing import Callable, Dict, Optional, Sequence

from mmengine.config import DictAction

from repvgg_mm.errors import RepVGGMMError


class ToolError(Exception):
    """An error a user can fix; its message says how."""


class ToolParser(argparse.ArgumentParser):
    """The tools' parser: it keeps its arguments by name (``dest``) and
    remembers the last one that parsed, so that :func:`run_tool` can name
    the package's arguments by their flags."""
    last: Optional['ToolParser'] = None

    def __init__(self, *args, **kwargs):
        self.arguments: Dict[str, argparse.Action] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments[action.dest] = action
        return action

    def parse_known_args(self, *args, **kwargs):
        ToolParser.last = self
        return super().parse_known_args(*args, **kwargs)


#: how the package names an argument in a message: `name` or `name=value`
_ARGUMENT = re.compile(r'`([A-Za-z_]\w*)(?:=([^`]*))?`')


def as_flags(message: str, parser: Optional[ToolParser]) -> str:
    """``message`` with each `name` / `name=value` of an argument that
    ``parser`` has written as the user typed it (``--flag value``,
    ``--flag`` / ``without --flag`` for a switch, ``NAME`` for a
    positional)."""
    actions = parser.arguments if parser else {}

    def flag(match: re.Match) -> str:
        action = actions.get(match.group(1))
        if action is None:
            return match.group(0)
        value = match.group(2)
        if not action.option_strings:
            name = action.metavar or action.dest.upper()
            return f'{name} {value}' if value else name
        name = max(action.option_strings, key=len)
        if action.nargs == 0 and value in ('True', 'False'):  # a switch
            return name if value == 'True' else f'without {name}'
        return name if value is None else f'{name} {value}'

    return _ARGUMENT.sub(flag, message)


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]],
             argv: Optional[Sequence[str]] = None) -> None:
    ToolParser.last = None
    try:
        code = main(argv)
    except ToolError as exc:
        print(f'error: {exc}', file=sys.stderr)
        sys.exit(2)
    except RepVGGMMError as exc:  # in terms of the API: named as flags
        print(f'error: {as_flags(str(exc), ToolParser.last)}',
              file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def add_model_args(parser: argparse.ArgumentParser,
                   checkpoint: Optional[str] = 'the checkpoint') -> None:
    """``--cfg-options`` and (when the tool reads ``checkpoint``)
    ``--unsafe-load``: the flags of every tool that builds a config's model.
    """
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=64 model.backbone.arch=b1')
    if checkpoint:
        parser.add_argument(
            '--unsafe-load', action='store_true',
            help=f'unpickle {checkpoint} fully instead of weights-only; this '
            f'runs any code stored in it, so only for files from a source '
            f'you trust')


def add_choice_args(parser: argparse.ArgumentParser) -> None:
    """``--max-drop`` and ``--min-time``: how the deploy job picks the
    serving it ships (``tools/deploy.py``, the main job's last step)."""
    parser.add_argument('--max-drop', type=float, default=0.5,
                        help='largest drop of the metric (top-1 / mIoU, '
                        'absolute points) from the fp32 model (default 0.5)')
    parser.add_argument('--min-time', type=float, default=1.0,
                        help='seconds each serving is timed per round '
                        '(default 1.0)')


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``tools/train.py`` and ``tools/test.py`` (OpenMMLab's)."""
    parser.add_argument('--work-dir',
                        help='where logs and checkpoints go (default: '
                        './work_dirs/<config name>)')
    parser.add_argument('--launcher',
                        choices=('none', 'pytorch', 'slurm', 'mpi'),
                        default='none',
                        help='job launcher (the dist_*/slurm_* scripts set '
                        'it)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_model_args(parser, 'the checkpoint (train: --resume or load_from)')
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
