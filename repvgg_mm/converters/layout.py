"""RepVGG key layouts: detection, renaming to this project's keys and the
arch the shapes tell; no model class imported (the backbone uses it)."""
import re
from itertools import accumulate
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch

from ..models.arch import ARCH_SETTINGS, BASE_WIDTHS, parse_arch
from ..models.repvgg_block import DEPLOY_BRANCH, TRAIN_BRANCHES


class Layout(NamedTuple):
    """How messages name a layout, a key only it has (searched without a
    ``module.`` prefix) and the renames to this project's keys."""

    name: str
    signature: str
    rules: Tuple[Tuple[str, Any], ...] = ()


_BN = (r'\.(branch_3x3|branch_1x1)\.bn\.', r'.\1.norm.')
_BLOCK_KEY = r'(stem|stage_[1-4]\.\d+)\.(branch_3x3|branch_reparam)\.'
_MMPRETRAIN = ((r'^(stem|stage_[1-4])\.', r'backbone.\1.'),
               (r'\.se_layer\.conv1\.conv\.', '.se.reduce.'),
               (r'\.se_layer\.conv2\.conv\.', '.se.expand.'))
#: in the order of detection (a project key also fits 'backbone' unprefixed)
LAYOUTS = {
    'official': Layout('the official RepVGG layout',
                       r'(^|\.)rbr_(dense|reparam)\.', (
                           (r'^stage0\.', 'backbone.stem.'),
                           (r'^stage([1-4])\.', r'backbone.stage_\1.'),
                           (r'\.rbr_dense\.', '.branch_3x3.'),
                           (r'\.rbr_1x1\.', '.branch_1x1.'),
                           (r'\.rbr_identity\.', '.branch_norm.'),
                           (r'\.rbr_reparam\.', '.branch_reparam.'),
                           (r'\.se\.down\.', '.se.reduce.'),
                           (r'\.se\.up\.', '.se.expand.'),
                           (r'^linear\.', 'head.fc.'), _BN)),
    'timm': Layout("timm's layout", r'(^|\.)(stem|stages\.\d+\.\d+)\.'
                   r'(conv_kxk|reparam_conv)\.', (
                       (r'^stem\.', 'backbone.stem.'),
                       (r'^stages\.([0-3])\.',
                        lambda m: f'backbone.stage_{int(m.group(1)) + 1}.'),
                       (r'\.conv_kxk\.', '.branch_3x3.'),
                       (r'\.conv_1x1\.', '.branch_1x1.'),
                       (r'\.identity\.', '.branch_norm.'),
                       (r'\.reparam_conv\.', '.branch_reparam.'),
                       (r'\.attn\.fc1\.', '.se.reduce.'),
                       (r'\.attn\.fc2\.', '.se.expand.'), _BN)),
    'mmpretrain': Layout("mmpretrain 1.2's layout",
                         r'\.se_layer\.conv1\.conv\.', _MMPRETRAIN),
    'backbone': Layout("a bare backbone's layout (mmpretrain / this "
                       "project)", '^' + _BLOCK_KEY, _MMPRETRAIN),
    'project': Layout("this project's layout", r'(^|\.)' + _BLOCK_KEY),
    'unknown': Layout('no known RepVGG layout', ''),  # the fallback
}
#: the layouts of other code (``fmt`` of the weight importer)
FORMATS = ('official', 'mmpretrain', 'timm')
FOREIGN = tuple(name for name, layout in LAYOUTS.items() if layout.rules)
BACKBONE_PREFIX = 'backbone.'
HEAD_PREFIX = 'head.fc.'
SHOWN_KEYS = 5  # keys an error message lists per kind of problem

_BLOCK = re.compile(r'^stage_([1-4])\.(\d+)\.')
_DEPLOY_KEY = re.compile(rf'(^|\.){DEPLOY_BRANCH}\.weight$')
_TRAIN_KEY = re.compile(rf'(^|\.){TRAIN_BRANCHES[0]}\.conv\.weight$')


def strip_wrapper_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Drop the ``module.`` prefix of (Distributed)DataParallel weights."""
    return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}


def repvgg_form(state_dict: Mapping[str, Any]) -> str:
    """The form of the RepVGG blocks in ``state_dict`` (project keys)."""
    fused = any(_DEPLOY_KEY.search(k) for k in state_dict)
    unfused = any(_TRAIN_KEY.search(k) for k in state_dict)
    if fused:
        return 'mixed' if unfused else 'deploy'
    return 'training' if unfused else 'none'


def key_problems(missing: List[str], unexpected: List[str],
                 shapes: List[str]) -> List[str]:
    """One sentence per kind of problem (empty when there is none)."""
    problems = []
    for what, keys in (('missing keys', missing),
                       ('unexpected keys', unexpected),
                       ('shape mismatches (weights vs model)', shapes)):
        if keys:
            more = len(keys) - SHOWN_KEYS
            problems.append(f'{len(keys)} {what}: '
                            f'{", ".join(keys[:SHOWN_KEYS])}'
                            f'{f" (and {more} more)" if more > 0 else ""}')
    return problems


def layout_problems(state_dict: Mapping[str, torch.Tensor],
                    layout: Mapping[str, torch.Size]) -> List[str]:
    """:func:`key_problems` of ``state_dict`` against ``layout``'s shapes."""
    shapes = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(size)}'
              for k, size in layout.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(size)]
    return key_problems([k for k in layout if k not in state_dict],
                        [k for k in state_dict if k not in layout], shapes)


def rename_key(key: str, fmt: str) -> str:
    """``key`` of layout ``fmt`` as this project's key."""
    for pattern, replacement in LAYOUTS[fmt].rules:
        key = re.sub(pattern, replacement, key)
    return key


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """The first :data:`LAYOUTS` name whose signature a key matches."""
    keys = list(strip_wrapper_prefix(state_dict))
    return next((name for name, layout in LAYOUTS.items()
                 if any(re.search(layout.signature, k) for k in keys)),
                'unknown')


def project_keys(state_dict: Mapping[str, Any],
                 layout: Optional[str] = None) -> Tuple[dict, str, str]:
    """``state_dict`` in this project's keys (a ``module.`` prefix
    dropped), its layout (detected unless given) and its RepVGG form."""
    layout = layout or detect_layout(state_dict)
    renamed = {rename_key(k, layout): v
               for k, v in strip_wrapper_prefix(state_dict).items()}
    return renamed, layout, repvgg_form(renamed)


def sub_dict(state_dict: Mapping[str, Any], prefix: str) -> dict:
    """The entries under ``prefix``, with ``prefix`` removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items()
            if k.startswith(prefix)}


def head_classes(state_dict: Mapping[str, Any]) -> Optional[int]:
    """The class count of a ``head.fc`` classifier in project keys."""
    weight = state_dict.get(HEAD_PREFIX + 'weight')
    return int(weight.shape[0]) if torch.is_tensor(weight) else None


def infer_arch(backbone: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The arch of a backbone state dict (project keys without prefix)
    read from its shapes; ``None`` when its blocks are incomplete."""
    counts = [0] * 4
    for match in filter(None, map(_BLOCK.match, backbone)):
        stage = int(match.group(1)) - 1
        counts[stage] = max(counts[stage], int(match.group(2)) + 1)
    names = ['stem'] + [f'stage_{i + 1}.{j}'
                        for i, count in enumerate(counts)
                        for j in range(count)]
    kernels = [backbone.get(f'{name}.branch_3x3.conv.weight',
                            backbone.get(f'{name}.branch_reparam.weight'))
               for name in names]
    if not all(counts) or not all(torch.is_tensor(k) for k in kernels):
        return None
    # layers 2, 4, ... may be grouped: input channels / kernel's in-channels
    groups = next((g for g in (kernels[i - 1].shape[0] // kernels[i].shape[1]
                               for i in range(2, len(kernels), 2)) if g > 1),
                  1)
    widths = [kernels[end].shape[0] for end in accumulate(counts)]
    reduce = backbone.get('stage_1.0.se.reduce.weight')
    return dict(num_blocks=tuple(counts),
                width_factor=tuple(w / b for w, b in zip(widths, BASE_WIDTHS)),
                groups=groups, se_ratio=(widths[0] // reduce.shape[0]
                                         if torch.is_tensor(reduce) else None))


def arch_label(arch: Optional[Dict[str, Any]]) -> str:
    """``'RepVGG-A0'`` for a named arch, else the arch dict."""
    if arch is None:
        return 'an incomplete RepVGG'
    for name in ARCH_SETTINGS:
        if parse_arch(name) == parse_arch(dict(arch)):
            return f'RepVGG-{name.upper().replace("G", "g")}'.replace(
                'SE', 'se')
    return f'RepVGG arch {dict(arch)}'
