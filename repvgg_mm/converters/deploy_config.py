"""The deploy config: the original config with every RepVGG dict fused.

``deploy=True`` is set on every ``type='RepVGGMM'`` (and ``'RepVGGBlock'``,
``'QARepVGGBlock'``) dict of ``cfg.model``, wherever it sits
(``model.backbone`` of a classifier or segmentor, a nested backbone, a list
of modules, ...). The written file is the complete, resolved config
(``_base_`` files merged, ``--cfg-options`` applied), so it stays valid
wherever it is copied.
"""
import copy
from typing import Any, List, Tuple

from ..errors import ConfigError
from ..io.atomic import atomic_output

#: config types whose ``deploy`` flag selects the fused form
REPVGG_TYPES = ('RepVGGMM', 'RepVGGBlock', 'QARepVGGBlock')


def type_name(type_: Any) -> str:
    """``'RepVGGMM'`` for ``'RepVGGMM'``, ``'mmseg.RepVGGMM'`` or the class."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', '')
    return name.split('.')[-1]


def find_repvgg_dicts(node: Any, path: str = 'model',
                      types: Tuple[str, ...] = REPVGG_TYPES
                      ) -> List[Tuple[str, Any]]:
    """``(path, dict)`` of every RepVGG module dict under ``node`` (of the
    given ``types``; a scope prefix such as ``mmseg.`` is ignored)."""
    found = []
    if isinstance(node, dict):
        if type_name(node.get('type')) in types:
            found.append((path, node))
        else:
            for key, value in node.items():
                found += find_repvgg_dicts(value, f'{path}.{key}', types)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += find_repvgg_dicts(value, f'{path}[{i}]', types)
    return found


def find_backbone_dicts(node: Any) -> List[Tuple[str, Any]]:
    """``(path, dict)`` of every ``type='RepVGGMM'`` dict under ``node``."""
    return find_repvgg_dicts(node, types=('RepVGGMM', ))


def deploy_config(cfg):
    """A copy of ``cfg`` whose RepVGG modules are built in deploy form."""
    cfg = copy.deepcopy(cfg)
    found = find_repvgg_dicts(cfg.model)
    if not found:
        raise ConfigError(
            'the config\'s model has no type="RepVGGMM" (or "RepVGGBlock") '
            'dict, so no deploy config can be derived from it.')
    for _, node in found:
        node['deploy'] = True
    return cfg


def write_deploy_config(cfg, path: str) -> None:
    """Write ``deploy_config(cfg)`` to ``path`` atomically."""
    deployed = deploy_config(cfg)
    with atomic_output(path) as tmp:
        deployed.dump(tmp)
