"""Importing RepVGG weights of the official code, mmpretrain and timm into
this project's classifier keys, in the source's form (training or deploy);
a missing BN ``num_batches_tracked`` is filled with 0."""
import re
from typing import Dict, Tuple, Union

import torch

from ..errors import CheckpointError, ConfigError
from ..io.checkpoint import load_checkpoint_file, state_dict_of
from ..models.arch import ARCH_SETTINGS
from ..models.repvgg import RepVGGMM
from .layout import (BACKBONE_PREFIX, FORMATS, HEAD_PREFIX,  # noqa: F401
                     head_classes, layout_problems, project_keys, rename_key)


def arch_name(name: str) -> str:
    """``'RepVGG-B1g4'``, ``'repvgg_b1g4'``, ``'B1g4'`` -> ``'b1g4'``."""
    key = re.sub(r'^repvgg[-_]?', '', name.strip().lower())
    if key not in ARCH_SETTINGS:
        raise ConfigError(f'unknown arch "{name}"; valid: '
                          f'{", ".join(ARCH_SETTINGS)}.')
    return key


def expected_layout(arch: Union[str, dict], deploy: bool,
                    num_classes: int = None) -> Dict[str, torch.Size]:
    """Keys and shapes of this project's classifier (on the meta device)."""
    with torch.device('meta'):
        backbone = RepVGGMM(arch=arch, deploy=deploy)
    layout = {BACKBONE_PREFIX + k: v.shape
              for k, v in backbone.state_dict().items()}
    if num_classes is not None:
        width = backbone.out_channels[-1]
        layout[HEAD_PREFIX + 'weight'] = torch.Size((num_classes, width))
        layout[HEAD_PREFIX + 'bias'] = torch.Size((num_classes, ))
    return layout


def _fit(state_dict, arch, deploy: bool, num_classes):
    """``state_dict`` (BN counters filled in) and its problems for ``arch``."""
    layout = expected_layout(arch, deploy, num_classes)
    filled = {k: torch.tensor(0) for k in layout
              if k.endswith('.num_batches_tracked')}
    filled.update(state_dict)
    return {k: filled[k] for k in layout if k in filled}, layout_problems(
        filled, layout)


def import_state_dict(source: Dict[str, torch.Tensor], fmt: str,
                      arch: Union[str, dict]) -> Tuple[dict, str]:
    """``(state dict, 'training' or 'deploy')``: ``source`` (layout ``fmt``)
    in this project's keys, or an error naming any arch it fits."""
    if fmt not in FORMATS:
        raise ConfigError(f'unknown format "{fmt}"; valid: {", ".join(FORMATS)}')
    mapped, _, form = project_keys(source, fmt)
    if form not in ('training', 'deploy'):
        raise CheckpointError(
            f'no RepVGG block in {fmt} layout found in the source weights '
            f'(form: {form}); first keys: {", ".join(list(source)[:3])}. Is '
            f'`fmt` right?')
    deploy, num_classes = form == 'deploy', head_classes(mapped)
    state_dict, problems = _fit(mapped, arch, deploy, num_classes)
    if problems:
        hint = ''
        if isinstance(arch, str):
            names = [name for name in ARCH_SETTINGS
                     if not _fit(mapped, name, deploy, num_classes)[1]]
            hint = (f' These weights match arch {" / ".join(names)}.'
                    if names else ' Is `fmt` right?')
        raise CheckpointError(
            f'the {fmt} weights do not fit RepVGG arch {arch!r} '
            f'({form} form): {"; ".join(problems)}.{hint}')
    return state_dict, form


def load_source(path: str, unsafe: bool = False) -> Dict[str, torch.Tensor]:
    """The state dict in ``path``: ``.safetensors`` (timm's hub files) or a
    torch checkpoint (read with ``weights_only=True`` unless ``unsafe``)."""
    if path.endswith('.safetensors'):
        # lazy: safetensors (not a dependency) only for .safetensors files
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(
                f'cannot read "{path}" as safetensors: {exc}') from None
    return state_dict_of(load_checkpoint_file(path, unsafe=unsafe))
