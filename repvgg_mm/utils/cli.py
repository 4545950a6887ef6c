"""Shared plumbing of the command-line tools: clear errors, config loading.

A tool's ``main`` raises :class:`ToolError` (or :class:`CheckpointError`) with
one paragraph that names the problem and the fix; :func:`run_tool` prints it
as ``error: ...`` and exits with status 2 instead of a deep traceback.
"""
import os
import sys
from typing import Callable, Optional, Sequence

from .checkpoint_io import CheckpointError


class ToolError(Exception):
    """An error a user can fix; its message says how."""


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]],
             argv: Optional[Sequence[str]] = None) -> None:
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
    """``mmengine.Config.fromfile`` with clear errors for common mistakes."""
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise ToolError(
            f'config file "{path}" does not exist. Configs live in configs/, '
            f'e.g. configs/repvgg-a0_8xb32_in1k.py.')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # syntax errors, missing _base_ files, ...
        raise ToolError(f'cannot read config "{path}": {exc}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ToolError(f'config "{path}" defines no "model"; is it a model '
                        f'config (not a _base_ fragment)?')
    return cfg
