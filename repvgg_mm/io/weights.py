"""Loading model weights strictly: every key must fit, or nothing is used.

The one rule of the project, used by the tools, the deploy hook, the
benchmark and ``tools/test.py``:

* the keys and shapes of the state dict must fit the model exactly (a
  ``module.`` prefix of (Distributed)DataParallel checkpoints is dropped);
* a training-form checkpoint loads into a model whose RepVGG blocks are in
  deploy form (the blocks fuse it while loading,
  :meth:`RepVGGBlock._load_from_state_dict`);
* a deploy-form checkpoint cannot load into a training-form model (a fused
  kernel cannot be split back into branches).

mmengine's own loaders default to ``strict=False`` and only warn, which can
leave a model with random weights; this never does.
"""
import re
from typing import Any, Dict, List, Mapping

import torch
import torch.nn as nn

from ..models.repvgg_block import DEPLOY_BRANCH, TRAIN_BRANCHES
from .checkpoint import CheckpointError, load_checkpoint_file, state_dict_of

_DEPLOY_KEY = re.compile(rf'(^|\.){DEPLOY_BRANCH}\.weight$')
_TRAIN_KEY = re.compile(rf'(^|\.){TRAIN_BRANCHES[0]}\.conv\.weight$')

#: how many keys an error message lists per kind of problem
SHOWN_KEYS = 5


def strip_wrapper_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Drop the ``module.`` prefix of (Distributed)DataParallel checkpoints,
    as mmengine's ``load_checkpoint`` does."""
    return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}


def repvgg_form(state_dict: Mapping[str, Any]) -> str:
    """``'training'``, ``'deploy'``, ``'mixed'`` or ``'none'``: the form of
    the RepVGG blocks stored in ``state_dict`` (this project's keys)."""
    fused = sum(1 for k in state_dict if _DEPLOY_KEY.search(k))
    unfused = sum(1 for k in state_dict if _TRAIN_KEY.search(k))
    if fused and unfused:
        return 'mixed'
    if fused:
        return 'deploy'
    return 'training' if unfused else 'none'


def _listing(keys: List[str]) -> str:
    more = len(keys) - SHOWN_KEYS
    suffix = f' (and {more} more)' if more > 0 else ''
    return ', '.join(keys[:SHOWN_KEYS]) + suffix


def key_problems(missing: List[str], unexpected: List[str],
                 shapes: List[str]) -> List[str]:
    """One sentence per kind of problem (empty when there is none)."""
    return [
        f'{len(keys)} {what}: {_listing(keys)}'
        for what, keys in (('missing keys', missing), ('unexpected keys',
                                                       unexpected),
                           ('shape mismatches (weights vs model)', shapes))
        if keys
    ]


def layout_problems(state_dict: Mapping[str, torch.Tensor],
                    layout: Mapping[str, torch.Size]) -> List[str]:
    """Missing keys, unexpected keys and shape mismatches of ``state_dict``
    against the keys and shapes ``layout`` expects."""
    return key_problems(
        [k for k in layout if k not in state_dict],
        [k for k in state_dict if k not in layout], [
            f'{k} {tuple(state_dict[k].shape)} vs {tuple(layout[k])}'
            for k in layout if k in state_dict
            and tuple(state_dict[k].shape) != tuple(layout[k])
        ])


def _mismatch_error(source: str, problems: List[str]) -> CheckpointError:
    return CheckpointError(
        f'the weights in "{source}" do not match the model built from the '
        f'config ({"; ".join(problems)}). Check that config and checkpoint '
        f'belong together (same arch, same model type, same number of '
        f'classes; a converted checkpoint needs the deploy config).')


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any],
                           source: str) -> None:
    """Load ``state_dict`` into ``model`` by the rule of the module doc.

    Raises:
        CheckpointError: naming the first missing / unexpected keys and shape
            mismatches, or why a RepVGG block cannot take its weights.
    """
    state_dict = strip_wrapper_prefix(state_dict)
    layout = {k: v.shape for k, v in model.state_dict().items()}
    if repvgg_form(state_dict) == repvgg_form(layout):
        # same form: every key and shape is known before anything is copied
        problems = layout_problems(state_dict, layout)
        if problems:
            raise _mismatch_error(source, problems)
        model.load_state_dict(state_dict, strict=True)
        return
    # training-form weights into fused blocks: the blocks rename the keys
    # while loading, so missing / unexpected keys are known afterwards
    shapes = [
        f'{k} {tuple(v.shape)} vs {tuple(layout[k])}'
        for k, v in state_dict.items()
        if k in layout and torch.is_tensor(v) and v.shape != layout[k]
    ]
    if shapes:
        raise _mismatch_error(source, key_problems([], [], shapes))
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # a RepVGG block refused its weights
        raise CheckpointError(
            f'cannot load "{source}": {exc} Use the config the checkpoint '
            f'was trained with, or its configs/deploy/*_deploy.py '
            f'counterpart for a converted checkpoint.') from None
    problems = key_problems(list(result.missing_keys),
                            list(result.unexpected_keys), [])
    if problems:
        raise _mismatch_error(source, problems)


def load_weights(model: nn.Module, path: str, unsafe: bool = False) -> dict:
    """Read the checkpoint file ``path`` safely and load it strictly into
    ``model``; returns the whole checkpoint (``meta`` etc.)."""
    checkpoint = load_checkpoint_file(path, unsafe=unsafe)
    load_state_dict_strict(model, state_dict_of(checkpoint), path)
    return checkpoint
