"""Reading an mm config with clear errors, and walking its nested dicts."""
import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from ..errors import ConfigError


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``mmengine.Config.fromfile``; the common mistakes are a
    :class:`ConfigError` (errors of the config's own code surface as such)."""
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


def type_name(type_: Any) -> str:
    """``'RepVGGMM'`` for ``'RepVGGMM'``, ``'mmseg.RepVGGMM'`` or the class."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', '')
    return name.split('.')[-1]


def config_dicts(node: Any, path: str = 'model') -> Iterator[Tuple[str, dict]]:
    """``(path, dict)`` of every dict under ``node`` (itself included)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from config_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from config_dicts(value, f'{path}[{i}]')


def find_module_dicts(node: Any,
                      types: Sequence[str]) -> List[Tuple[str, dict]]:
    """``(path, dict)`` of every dict under ``node`` of one of ``types``
    (any scope), not those inside a found one (a ``RepVGGMM``'s blocks)."""
    found = []
    for where, d in config_dicts(node):
        if type_name(d.get('type')) in types and not any(
                where.startswith(f'{outer}.') for outer, _ in found):
            found.append((where, d))
    return found


def innermost_dataset(node: Any) -> Any:
    """The dataset dict of a loader (or wrapper) with the ``pipeline``."""
    while isinstance(node, dict) and 'pipeline' not in node and isinstance(
            node.get('dataset'), dict):
        node = node['dataset']
    return node


def dataset_pipeline(node: Any) -> Optional[list]:
    """The ``pipeline`` of :func:`innermost_dataset` (``None`` if none)."""
    node = innermost_dataset(node)
    pipeline = node.get('pipeline') if isinstance(node, dict) else None
    return pipeline if isinstance(pipeline, (list, tuple)) else None
