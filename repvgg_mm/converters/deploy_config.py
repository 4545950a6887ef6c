"""The deploy config: the original config with every RepVGG dict fused.

``deploy=True`` is set on every ``type='RepVGGMM'`` (and ``'RepVGGBlock'``,
``'QARepVGGBlock'``) dict of ``cfg.model``, wherever it sits
(``model.backbone`` of a classifier or segmentor, a nested backbone, a list
of modules, ...). The written file is the complete, resolved config
(``_base_`` files merged, ``--cfg-options`` applied), so it stays valid
wherever it is copied.
"""
import copy

from ..errors import ConfigError
from ..io.atomic import atomic_output
from ..utils.config import find_module_dicts

#: config types whose ``deploy`` flag selects the fused form
REPVGG_TYPES = ('RepVGGMM', 'RepVGGBlock', 'QARepVGGBlock')
#: the backbone's config type
BACKBONE_TYPES = ('RepVGGMM', )


def deploy_config(cfg):
    """A copy of ``cfg`` whose RepVGG modules are built in deploy form."""
    cfg = copy.deepcopy(cfg)
    found = find_module_dicts(cfg.model, REPVGG_TYPES)
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
