"""Reading an mm config with clear errors for the common mistakes."""
import os
from typing import Optional

from mmengine.config import Config

from ..errors import ConfigError


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``mmengine.Config.fromfile`` with clear errors for common mistakes.

    A missing file, a syntax error and a missing ``_base_`` file raise
    :class:`~repvgg_mm.errors.ConfigError` with one paragraph; any other
    error inside the config's own code surfaces as it is, with its
    traceback.
    """
    if not os.path.isfile(path):
        raise ConfigError(
            f'config file "{path}" does not exist. Configs live in configs/, '
            f'e.g. configs/repvgg-a0_8xb32_in1k.py.')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise ConfigError(
            f'config "{path}" is not valid Python: {exc}') from None
    except FileNotFoundError as exc:  # a _base_ file that does not exist
        raise ConfigError(f'cannot read config "{path}": {exc}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ConfigError(f'config "{path}" defines no "model"; is it a model '
                          f'config (not a _base_ fragment)?')
    return cfg
