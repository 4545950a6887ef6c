"""Models to benchmark: built from an mm config or from a timm name.

A *source* is what the user names on the command line:

* a config file (``configs/repvgg-a0_8xb32_in1k.py``) or a config bundled
  with an installed OpenMMLab package
  (``mmpretrain::resnet/resnet18_8xb32_in1k.py``):
  built with the config's ``default_scope`` after its ``custom_imports``;
* ``timm:<name>`` (e.g. ``timm:repvgg_a0``): a timm model, whose deployed form
  is timm's own re-parameterization.

Every model is timed on its network forward (``mode='tensor'`` for mm
models: no data preprocessor, no post-processing), as in the paper.
"""
import os
import os.path as osp
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn

from repvgg_mm.errors import ConfigError
from repvgg_mm.io.weights import load_weights as load_weights_file
from repvgg_mm.utils.config import load_config

from .protocol import task_of

TIMM_PREFIX = 'timm:'


class BenchModel(NamedTuple):
    """A model under test, in its training form (eval mode)."""

    name: str  #: short label (config stem or ``timm:<name>``)
    source: str  #: what the user gave
    model: nn.Module
    task: str  #: ``'classification'``, ``'segmentation'``, ``'detection'``
    #: the model's own re-parameterization (timm), else ``None``
    own_deploy: Optional[Callable[[nn.Module], nn.Module]] = None
    checkpoint: Optional[str] = None
    channels: int = 3  #: input image channels


def resolve_config_path(source: str) -> str:
    """A config file path; ``pkg::rel/path.py`` is looked up in ``pkg``."""
    if '::' not in source:
        return source
    package, _, rel_path = source.partition('::')
    from mmengine.utils import get_installed_path, is_installed
    if not is_installed(package):
        raise ConfigError(f'"{source}" names a config of the package '
                          f'"{package}", which is not installed.')
    path = osp.join(get_installed_path(package), '.mim', 'configs', rel_path)
    if not osp.isfile(path):
        raise ConfigError(
            f'"{source}": {package} has no config "{rel_path}" (looked for '
            f'{path}). List its configs with `ls {osp.dirname(path)}`.')
    return path


def build_from_config(source: str, cfg_options: dict = None) -> BenchModel:
    """Build the model of an mm config under the config's default scope."""
    from repvgg_mm.converters.config_model import build_model, input_channels
    from repvgg_mm.engine.config_checks import check_neck_channels
    cfg = load_config(resolve_config_path(source), cfg_options)
    check_neck_channels(cfg)
    # built without init_weights(): random weights, nothing downloaded
    model = build_model(cfg)
    name = osp.splitext(osp.basename(source.partition('::')[2] or source))[0]
    return BenchModel(name, source, model.eval(),
                      task_of(model, cfg.get('default_scope')),
                      channels=input_channels(cfg))


def build_timm(source: str) -> BenchModel:
    """``timm:<name>``: a randomly initialised timm model."""
    try:
        import timm
        from timm.utils import reparameterize_model
    except ImportError:
        raise ConfigError(f'"{source}" needs timm: pip install timm') from None
    arch = source[len(TIMM_PREFIX):]
    if arch not in timm.list_models():
        raise ConfigError(f'timm has no model "{arch}"; see '
                          f'timm.list_models("*{arch[:4]}*").')
    model = timm.create_model(arch, pretrained=False)
    return BenchModel(source, source, model.eval(), 'classification',
                      own_deploy=reparameterize_model)


def check_source(source: str) -> None:
    """Raise :class:`ConfigError` now if ``source`` names no config file."""
    if source.startswith(TIMM_PREFIX):
        return
    path = resolve_config_path(source)
    if not osp.isfile(path):
        raise ConfigError(f'config file "{source}" does not exist.')


def build_source(source: str, cfg_options: dict = None) -> BenchModel:
    if source.startswith(TIMM_PREFIX):
        return build_timm(source)
    return build_from_config(source, cfg_options)


def load_weights(bench: BenchModel, checkpoint: str,
                 unsafe: bool = False) -> BenchModel:
    """Strictly load ``checkpoint`` into ``bench.model``.

    Raises:
        CheckpointError: the checkpoint does not fit the config's model.
    """
    load_weights_file(bench.model, checkpoint, unsafe=unsafe)
    return bench._replace(checkpoint=os.path.abspath(checkpoint))


def example_input(batch_size: int, shape, device='cpu',
                  channels: int = 3) -> torch.Tensor:
    """A normalised-image-like random batch."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, channels, *shape,
                       generator=gen).to(device)
