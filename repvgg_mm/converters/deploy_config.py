"""The deploy config: ``deploy=True`` on every RepVGG dict of ``cfg.model``."""
import copy

from ..errors import ConfigError
from ..io.atomic import atomic_output
from ..utils.config import find_module_dicts

#: config types whose ``deploy`` flag selects the fused form
REPVGG_TYPES = ('RepVGGMM', 'RepVGGBlock', 'QARepVGGBlock')
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
    with atomic_output(path) as tmp:
        deploy_config(cfg).dump(tmp)
