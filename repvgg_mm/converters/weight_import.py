"""Importing RepVGG weights from the official code, mmpretrain and timm.

The result uses this project's keys, i.e. those of an mmpretrain
``ImageClassifier`` with ``backbone=dict(type='RepVGGMM')`` and a
``LinearClsHead``: ``backbone.<module>.<branch>.*`` and ``head.fc.*``.

The key layouts are listed in :mod:`repvgg_mm.converters.layout`.

Training-form sources give training-form checkpoints (usable with the
training configs); deploy-form sources (``rbr_reparam``, ``branch_reparam``,
``reparam_conv``) give deploy-form checkpoints, to be used with
``model.backbone.deploy=True``. A ``module.`` prefix (DataParallel) is
dropped; a missing BN ``num_batches_tracked`` is filled with 0 (it does not
affect eval-mode outputs).
"""
import re
from typing import Dict, List, Tuple, Union

import torch

from ..errors import CheckpointError, ConfigError
from ..io.checkpoint import load_checkpoint_file, state_dict_of
from ..models.arch import ARCH_SETTINGS, parse_arch
from ..models.repvgg import RepVGGMM
from .layout import (BACKBONE_PREFIX, FORMATS, HEAD_PREFIX,  # noqa: F401
                     layout_problems, rename_key, repvgg_form,
                     strip_wrapper_prefix)


def arch_name(name: str) -> str:
    """``'RepVGG-B1g4'``, ``'repvgg_b1g4'``, ``'B1g4'`` -> ``'b1g4'``."""
    key = re.sub(r'^repvgg[-_]?', '', name.strip().lower())
    if key not in ARCH_SETTINGS:
        raise ConfigError(f'unknown --arch "{name}"; valid: '
                          f'{", ".join(ARCH_SETTINGS)}.')
    return key


def expected_layout(arch: Union[str, dict], deploy: bool,
                    num_classes: int = None) -> Dict[str, torch.Size]:
    """Keys and shapes of this project's classifier (built on the meta
    device: no memory, no time)."""
    with torch.device('meta'):
        backbone = RepVGGMM(arch=arch, deploy=deploy)
    layout = {BACKBONE_PREFIX + k: v.shape
              for k, v in backbone.state_dict().items()}
    if num_classes is not None:
        width = backbone.out_channels[-1]
        layout[HEAD_PREFIX + 'weight'] = torch.Size((num_classes, width))
        layout[HEAD_PREFIX + 'bias'] = torch.Size((num_classes, ))
    return layout


def _with_num_batches_tracked(state_dict, layout):
    """Older checkpoints lack BN's ``num_batches_tracked``: fill in 0."""
    filled = dict(state_dict)
    for key in layout:
        if key.endswith('.num_batches_tracked') and key not in filled:
            filled[key] = torch.tensor(0, dtype=torch.long)
    return filled


def matching_archs(state_dict, deploy: bool, num_classes) -> List[str]:
    """The arch names whose layout ``state_dict`` fits."""
    names = []
    for name in ARCH_SETTINGS:
        layout = expected_layout(name, deploy, num_classes)
        if not layout_problems(_with_num_batches_tracked(state_dict, layout),
                               layout):
            names.append(name)
    return names


def import_state_dict(source: Dict[str, torch.Tensor], fmt: str,
                      arch: Union[str, dict]) -> Tuple[dict, str]:
    """Map ``source`` (a state dict in format ``fmt``) to this project's keys.

    Returns:
        ``(state_dict, form)`` with form ``'training'`` or ``'deploy'``.

    Raises:
        CheckpointError: the weights are not a RepVGG of ``arch`` in ``fmt``
            (naming the first missing / unexpected keys and any matching
            arch).
    """
    if fmt not in FORMATS:
        raise ConfigError(f'unknown format "{fmt}"; valid: {", ".join(FORMATS)}')
    parse_arch(arch)
    mapped = {
        rename_key(k, fmt): v
        for k, v in strip_wrapper_prefix(source).items()
    }
    form = repvgg_form(mapped)
    if form not in ('training', 'deploy'):
        raise CheckpointError(
            f'no RepVGG block in {fmt} layout found in the source weights '
            f'(form: {form}); first keys: {", ".join(list(source)[:3])}. Is '
            f'--format right?')
    deploy = form == 'deploy'
    head = mapped.get(HEAD_PREFIX + 'weight')
    num_classes = head.shape[0] if head is not None else None
    layout = expected_layout(arch, deploy, num_classes)
    filled = _with_num_batches_tracked(mapped, layout)
    problems = layout_problems(filled, layout)
    if problems:
        hint = ''
        if isinstance(arch, str):
            names = matching_archs(mapped, deploy, num_classes)
            hint = (f' These weights match --arch {" / ".join(names)}.'
                    if names else ' Is --format right?')
        raise CheckpointError(
            f'the {fmt} weights do not fit RepVGG arch {arch!r} '
            f'({form} form): {"; ".join(problems)}.{hint}')
    return {k: filled[k] for k in layout}, form


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
