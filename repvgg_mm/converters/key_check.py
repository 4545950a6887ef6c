"""Comparing a state dict with the keys and shapes a model expects."""
from typing import List, Mapping

import torch

#: how many keys an error message lists per kind of problem
SHOWN_KEYS = 5


def _listing(keys: List[str]) -> str:
    more = len(keys) - SHOWN_KEYS
    suffix = f' (and {more} more)' if more > 0 else ''
    return ', '.join(keys[:SHOWN_KEYS]) + suffix


def layout_problems(state_dict: Mapping[str, torch.Tensor],
                    layout: Mapping[str, torch.Size]) -> List[str]:
    """Missing keys, unexpected keys and shape mismatches, one sentence
    each (empty when ``state_dict`` fits ``layout``)."""
    missing = [k for k in layout if k not in state_dict]
    unexpected = [k for k in state_dict if k not in layout]
    shapes = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(layout[k])}'
        for k in layout
        if k in state_dict and tuple(state_dict[k].shape) != tuple(layout[k])
    ]
    return [
        f'{len(keys)} {what}: {_listing(keys)}'
        for what, keys in (('missing keys', missing), ('unexpected keys',
                                                       unexpected),
                           ('shape mismatches (weights vs model)', shapes))
        if keys
    ]
