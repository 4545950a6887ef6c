"""The deploy config: the original config with every RepVGG dict fused.

``deploy=True`` is set on every ``type='RepVGGMM'`` (and ``'RepVGGBlock'``)
dict of ``cfg.model``, wherever it sits (``model.backbone`` of a classifier
or segmentor, a nested backbone, a list of modules, ...). The written file is
the complete, resolved config (``_base_`` files merged, ``--cfg-options``
applied), so it stays valid wherever it is copied.
"""
import copy
from typing import Any, List, Tuple

from ..utils.atomic import atomic_output
from ..utils.cli import ToolError

#: config types whose ``deploy`` flag selects the fused form
REPVGG_TYPES = ('RepVGGMM', 'RepVGGBlock')


def _is_repvgg_type(type_: Any) -> bool:
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', '')
    return name.split('.')[-1] in REPVGG_TYPES  # 'mmseg.RepVGGMM' etc.


def find_repvgg_dicts(node: Any, path: str = 'model') -> List[Tuple[str, Any]]:
    """``(path, dict)`` of every RepVGG module dict under ``node``."""
    found = []
    if isinstance(node, dict):
        if _is_repvgg_type(node.get('type')):
            found.append((path, node))
        else:
            for key, value in node.items():
                found += find_repvgg_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += find_repvgg_dicts(value, f'{path}[{i}]')
    return found


def deploy_config(cfg):
    """A copy of ``cfg`` whose RepVGG modules are built in deploy form."""
    cfg = copy.deepcopy(cfg)
    found = find_repvgg_dicts(cfg.model)
    if not found:
        raise ToolError(
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
