"""Which RepVGG layout a state dict is in, and its keys in this project's.

The key mapping of the importer (:mod:`.weight_import`) without any model:
this module imports no model class, so the backbone itself can use it while
it loads (:mod:`.pretrained`). Key layouts (``b`` is one block; ``i`` =
1..4, ``j`` = block in stage)::

    this project       official         mmpretrain 1.2.0      timm
    backbone.stem      stage0           backbone.stem         stem
    backbone.stage_i.j stage{i}.{j}     backbone.stage_i.j    stages.{i-1}.{j}
    b.branch_3x3.conv  b.rbr_dense.conv b.branch_3x3.conv     b.conv_kxk.conv
    b.branch_3x3.norm  b.rbr_dense.bn   b.branch_3x3.norm     b.conv_kxk.bn
    b.branch_1x1.conv  b.rbr_1x1.conv   b.branch_1x1.conv     b.conv_1x1.conv
    b.branch_1x1.norm  b.rbr_1x1.bn     b.branch_1x1.norm     b.conv_1x1.bn
    b.branch_norm      b.rbr_identity   b.branch_norm         b.identity
    b.branch_reparam   b.rbr_reparam    b.branch_reparam      b.reparam_conv
    b.se.reduce        b.se.down        b.se_layer.conv1.conv b.attn.fc1
    b.se.expand        b.se.up          b.se_layer.conv2.conv b.attn.fc2
    head.fc            linear           head.fc               head.fc

A bare backbone (``stem.*``, ``stage_i.*``: mmpretrain's or this project's
``RepVGGMM().state_dict()``) is the layout ``'backbone'`` (mmpretrain's
rules, the prefix added).
"""
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..models.arch import ARCH_SETTINGS, BASE_WIDTHS, parse_arch
from ..models.repvgg_block import DEPLOY_BRANCH, TRAIN_BRANCHES

Rule = Tuple[str, Any]  # (pattern, replacement str or callable)

BACKBONE_RULES: Dict[str, Sequence[Rule]] = {
    'official': (
        (r'^stage0\.', 'backbone.stem.'),
        (r'^stage([1-4])\.', r'backbone.stage_\1.'),
        (r'\.rbr_dense\.bn\.', '.branch_3x3.norm.'),
        (r'\.rbr_dense\.', '.branch_3x3.'),
        (r'\.rbr_1x1\.bn\.', '.branch_1x1.norm.'),
        (r'\.rbr_1x1\.', '.branch_1x1.'),
        (r'\.rbr_identity\.', '.branch_norm.'),
        (r'\.rbr_reparam\.', '.branch_reparam.'),
        (r'\.se\.down\.', '.se.reduce.'),
        (r'\.se\.up\.', '.se.expand.'),
        (r'^linear\.', 'head.fc.'),
    ),
    'mmpretrain': (
        (r'^(stem|stage_[1-4])\.', r'backbone.\1.'),  # a bare backbone
        (r'\.se_layer\.conv1\.conv\.', '.se.reduce.'),
        (r'\.se_layer\.conv2\.conv\.', '.se.expand.'),
    ),
    'timm': (
        (r'^stem\.', 'backbone.stem.'),
        (r'^stages\.([0-3])\.',
         lambda m: f'backbone.stage_{int(m.group(1)) + 1}.'),
        (r'\.conv_kxk\.bn\.', '.branch_3x3.norm.'),
        (r'\.conv_kxk\.', '.branch_3x3.'),
        (r'\.conv_1x1\.bn\.', '.branch_1x1.norm.'),
        (r'\.conv_1x1\.', '.branch_1x1.'),
        (r'\.identity\.', '.branch_norm.'),
        (r'\.reparam_conv\.', '.branch_reparam.'),
        (r'\.attn\.fc1\.', '.se.reduce.'),
        (r'\.attn\.fc2\.', '.se.expand.'),
    ),
}
BACKBONE_RULES['backbone'] = BACKBONE_RULES['mmpretrain']
#: the layouts of other code (``--format`` of tools/convert_weights.py)
FORMATS = ('official', 'mmpretrain', 'timm')
#: the layouts this module renames: FORMATS and a bare backbone
FOREIGN = FORMATS + ('backbone', )
BACKBONE_PREFIX = 'backbone.'
HEAD_PREFIX = 'head.fc.'

#: a key that only the layout can have (searched in the stripped keys)
_SIGNATURES: Tuple[Tuple[str, 're.Pattern'], ...] = (
    ('official', re.compile(r'(^|\.)rbr_(dense|reparam)\.')),
    ('timm', re.compile(r'(^|\.)(stem|stages\.\d+\.\d+)\.'
                        r'(conv_kxk|reparam_conv)\.')),
    ('mmpretrain', re.compile(r'\.se_layer\.conv1\.conv\.')),
    ('backbone', re.compile(r'^(stem|stage_[1-4]\.\d+)\.'
                            r'(branch_3x3|branch_reparam)\.')),
    ('project', re.compile(r'(^|\.)(stem|stage_[1-4]\.\d+)\.'
                           r'(branch_3x3|branch_reparam)\.')),
)
_BLOCK = re.compile(r'^(stem|stage_([1-4])\.(\d+))\.')
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


def rename_key(key: str, fmt: str) -> str:
    """``key`` of layout ``fmt`` as this project's key."""
    for pattern, replacement in BACKBONE_RULES[fmt]:
        key = re.sub(pattern, replacement, key)
    return key


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """``'project'``, ``'official'``, ``'mmpretrain'``, ``'timm'``,
    ``'backbone'`` (a bare backbone) or ``'unknown'`` (no RepVGG block
    found), from the keys alone."""
    keys = list(strip_wrapper_prefix(state_dict))
    for layout, signature in _SIGNATURES:
        if any(signature.search(k) for k in keys):
            return layout
    return 'unknown'


def project_keys(state_dict: Mapping[str, Any]) -> Tuple[dict, str, str]:
    """``state_dict`` in this project's keys (``backbone.*``, ``head.fc.*``;
    a ``module.`` prefix dropped), its layout and its RepVGG form. Keys of
    the ``project`` layout are kept as they are."""
    layout = detect_layout(state_dict)
    stripped = strip_wrapper_prefix(state_dict)
    if layout in FOREIGN:
        stripped = {rename_key(k, layout): v for k, v in stripped.items()}
    return stripped, layout, repvgg_form(stripped)


def sub_dict(state_dict: Mapping[str, Any], prefix: str) -> dict:
    """The entries under ``prefix``, with ``prefix`` removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items()
            if k.startswith(prefix)}


def head_classes(state_dict: Mapping[str, Any]) -> Optional[int]:
    """The class count of a ``head.fc`` classifier in project keys."""
    weight = state_dict.get(HEAD_PREFIX + 'weight')
    return int(weight.shape[0]) if torch.is_tensor(weight) else None


def _first_kernel(backbone: Mapping[str, Any], block: str):
    for name in ('branch_3x3.conv.weight', 'branch_reparam.weight'):
        value = backbone.get(f'{block}.{name}')
        if torch.is_tensor(value):
            return value
    return None


def infer_arch(backbone: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The arch (:func:`~repvgg_mm.models.arch.parse_arch` form) of a
    backbone state dict in project keys without prefix, read from the
    shapes; ``None`` when its blocks are incomplete."""
    counts = [0] * 4
    for key in backbone:
        match = _BLOCK.match(key)
        if match and match.group(2):
            stage = int(match.group(2)) - 1
            counts[stage] = max(counts[stage], int(match.group(3)) + 1)
    stem = _first_kernel(backbone, 'stem')
    if stem is None or not all(counts):
        return None
    widths, groups, channels, layer = [], 1, stem.shape[0], 1
    for i, count in enumerate(counts):
        for j in range(count):
            kernel = _first_kernel(backbone, f'stage_{i + 1}.{j}')
            if kernel is None:
                return None
            if layer % 2 == 0 and groups == 1:
                groups = channels // kernel.shape[1]
            channels, layer = kernel.shape[0], layer + 1
        widths.append(channels)
    reduce = backbone.get('stage_1.0.se.reduce.weight')
    se_ratio = (widths[0] // reduce.shape[0]
                if torch.is_tensor(reduce) else None)
    return dict(num_blocks=tuple(counts),
                width_factor=tuple(w / b for w, b in zip(widths, BASE_WIDTHS)),
                groups=groups, se_ratio=se_ratio)


def arch_label(arch: Optional[Dict[str, Any]]) -> str:
    """``'RepVGG-A0'`` for a named arch, else the arch dict."""
    if arch is None:
        return 'an incomplete RepVGG'
    for name in ARCH_SETTINGS:
        if parse_arch(name) == parse_arch(dict(arch)):
            return f'RepVGG-{name.upper().replace("G", "g")}'.replace(
                'SE', 'se')
    return f'RepVGG arch {dict(arch)}'


def same_arch(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    return parse_arch(dict(a)) == parse_arch(dict(b))
