"""Loading weights strictly (mmengine's loaders only warn): every key and
shape must fit, any known RepVGG layout is mapped first, and a training-form
checkpoint loads into deploy-form blocks (never the reverse)."""
from typing import Any, List, Mapping, Tuple

import torch
import torch.nn as nn

from ..converters.layout import (BACKBONE_PREFIX, FOREIGN, key_problems,
                                 layout_problems, project_keys, repvgg_form,
                                 sub_dict)
from ..converters.pretrained import (NOTE_KEY, arch_mismatch, make_note,
                                     with_note)
from ..models.repvgg import RepVGGMM
from .checkpoint import CheckpointError, load_checkpoint_file, state_dict_of


def _mismatch_error(source: str, problems: List[str]) -> CheckpointError:
    return CheckpointError(
        f'the weights in "{source}" do not match the model built from the '
        f'config ({"; ".join(problems)}). Check that config and checkpoint '
        f'belong together (same arch, same model type, same number of '
        f'classes; a converted checkpoint needs the deploy config).')


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any],
                           source: str) -> None:
    """Load ``state_dict`` into ``model`` by the rule of the module doc."""
    backbones = {name + '.' if name else '': m
                 for name, m in model.named_modules()
                 if isinstance(m, RepVGGMM)}
    # any RepVGG layout in this project's keys; the backbones log the load
    note = getattr(state_dict, '_metadata', {}).get('', {}).get(
        NOTE_KEY) or make_note(state_dict, source)
    renamed, found, _ = project_keys(state_dict)
    if found in FOREIGN and list(backbones) == ['']:  # the model: a RepVGGMM
        renamed = sub_dict(renamed, BACKBONE_PREFIX)
    state_dict = with_note(renamed, note)
    archs = [text for text in (
        arch_mismatch(backbone, sub_dict(state_dict, prefix), prefix)
        for prefix, backbone in backbones.items()) if text]
    layout = {k: v.shape for k, v in model.state_dict().items()}
    if repvgg_form(state_dict) == repvgg_form(layout):
        # same form: every key and shape is known before anything is copied
        problems = layout_problems(state_dict, layout)
    else:
        # training-form weights into fused blocks: the blocks rename the
        # keys while loading, so missing / unexpected keys are known afterwards
        problems = key_problems([], [], [
            f'{k} {tuple(v.shape)} vs {tuple(layout[k])}'
            for k, v in state_dict.items()
            if k in layout and torch.is_tensor(v) and v.shape != layout[k]])
    if problems or archs:
        raise _mismatch_error(source, problems + archs)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except CheckpointError:
        raise
    except RuntimeError as exc:  # a RepVGG block refused its weights
        raise CheckpointError(
            f'cannot load "{source}": {exc} Use the config the checkpoint '
            f'was trained with, or its configs/deploy/*_deploy.py '
            f'counterpart for a converted checkpoint.') from None
    problems = key_problems(list(result.missing_keys),
                            list(result.unexpected_keys), [])
    if problems:
        raise _mismatch_error(source, problems)


def read_weights(path: str, unsafe: bool = False) -> Tuple[Any, dict]:
    """``(checkpoint, state dict in project keys noted with its source)``."""
    checkpoint = load_checkpoint_file(path, unsafe=unsafe)
    note = make_note(state_dict_of(checkpoint), path)
    return checkpoint, with_note(note.weights, note)


def load_weights(model: nn.Module, path: str, unsafe: bool = False) -> dict:
    """Load ``path`` strictly into ``model``; returns the whole checkpoint."""
    checkpoint, state_dict = read_weights(path, unsafe)
    load_state_dict_strict(model, state_dict, path)
    return checkpoint
