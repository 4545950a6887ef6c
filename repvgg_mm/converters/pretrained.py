"""Pretrained weights of any layout into ``RepVGGMM``: exact, or an error.

Every load that reaches a :class:`~repvgg_mm.models.RepVGGMM` -- torch's
``load_state_dict``, mmengine's (``load_from``, resume, ``init_cfg``) and
the tools' (:func:`repvgg_mm.io.weights.load_state_dict_strict`) -- passes
through the two hooks of this module, which the backbone calls:

* :func:`before_backbone_load` (from ``RepVGGMM._load_from_state_dict``)
  maps a foreign layout under the backbone's prefix (mmpretrain's SE keys,
  official or timm keys) to this project's keys, in memory. When nothing is
  under the prefix, it takes the backbone's weights from the file's
  :class:`LoadNote` (official / timm / bare-backbone files have no
  ``backbone.`` prefix). An arch that differs from the model's is an error
  naming both archs.
* :func:`after_backbone_load` (a load_state_dict post-hook) raises
  :class:`~repvgg_mm.errors.CheckpointError` for any backbone tensor left
  unloaded or of the wrong shape -- mmengine's non-strict loaders would only
  warn -- and logs the one line of what was loaded.

The note travels with the state dict as its ``_metadata`` (kept by torch's
and mmengine's loaders, which hand each module ``metadata.get(prefix)``):
see :func:`with_note`. Files read by mmengine get it from
:mod:`repvgg_mm.engine.checkpoint_loader`.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from ..errors import CheckpointError
from ..io.checkpoint import state_dict_of
from .layout import (BACKBONE_PREFIX, FOREIGN, HEAD_PREFIX, arch_label,
                     detect_layout, head_classes, infer_arch, key_problems,
                     project_keys, same_arch, strip_wrapper_prefix, sub_dict)

NOTE_KEY = 'repvgg_mm_load_note'
LAYOUT_NAMES = {
    'project': "this project's layout",
    'official': 'the official RepVGG layout',
    'mmpretrain': "mmpretrain 1.2's layout",
    'timm': "timm's layout",
    'backbone': "a bare backbone's layout (mmpretrain / this project)",
}
#: the head keys :mod:`repvgg_mm.engine.checkpoint_loader` adds for an
#: official file (its ``linear.*``)
HEAD_ALIASES = (HEAD_PREFIX + 'weight', HEAD_PREFIX + 'bias')
ACCEPTED = ('the official RepVGG code (training / deploy form), timm '
            'repvgg_*, mmpretrain 1.2 RepVGG, this project (RepVGGMM, '
            'QARepVGG)')


@dataclass
class LoadNote:
    """What a state dict was read from, for the backbone that loads it."""

    source: str  #: the file (or URL) the weights came from
    layout: str  #: :func:`~.layout.detect_layout`'s answer
    form: str  #: 'training', 'deploy', 'mixed' or 'none'
    weights: Dict[str, Any]  #: the whole file in this project's keys
    consumed: Tuple[str, ...] = ()  #: file keys a backbone may take
    head: str = ''  #: what happens to a classifier head, said in the log
    loaded: List[str] = field(default_factory=list)  #: prefixes loaded


class NotedMetadata(OrderedDict):
    """A state dict's ``_metadata`` that hands every module the note."""

    def __init__(self, base: Optional[Mapping], note: LoadNote):
        super().__init__(base or {})
        self.note = note

    def get(self, key, default=None):
        value = super().get(key, default)
        return dict(value or {}, **{NOTE_KEY: self.note})

    def __reduce__(self):  # saved or copied as the plain metadata
        return OrderedDict, (list(self.items()), )


def make_note(state_dict: Mapping[str, Any], source: str,
              head: str = '') -> LoadNote:
    """The note of ``state_dict`` (any layout) read from ``source``."""
    weights, layout, form = project_keys(state_dict)
    consumed = tuple(
        k for k in strip_wrapper_prefix(state_dict)
        if layout in ('official', 'timm', 'backbone'))
    return LoadNote(source, layout, form, weights, consumed, head)


def with_note(state_dict: Mapping[str, Any], note: LoadNote) -> OrderedDict:
    """``state_dict`` (same tensors) carrying ``note`` as its metadata."""
    noted = OrderedDict(state_dict)
    noted._metadata = NotedMetadata(getattr(state_dict, '_metadata', None),
                                    note)
    return noted


def _replace(state_dict: dict, prefix: str, weights: Mapping) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]
    state_dict.update({prefix + k: v for k, v in weights.items()})


def _arch_error(note: Optional[LoadNote], prefix: str, theirs, ours):
    source = f'"{note.source}"' if note else 'the state dict'
    return CheckpointError(
        f'the weights in {source} are {arch_label(theirs)}, but the RepVGGMM '
        f'backbone{_at(prefix)} is {arch_label(ours)}. Build the backbone '
        f'with the arch of the weights (model.backbone.arch), or use a '
        f'checkpoint of {arch_label(ours)}.')


def _at(prefix: str) -> str:
    return f' "{prefix[:-1]}"' if prefix else ''


def arch_mismatch(backbone, own: Mapping[str, Any],
                  prefix: str) -> Optional[str]:
    """Both archs, if the backbone weights ``own`` (project keys without
    prefix) are of another arch than ``backbone``; else ``None``."""
    theirs = infer_arch(own) if own else None
    ours = infer_arch(backbone.state_dict()) if own else None
    if theirs is None or ours is None or same_arch(theirs, ours):
        return None
    return (f'the weights are {arch_label(theirs)}, the RepVGGMM backbone'
            f'{_at(prefix)} is {arch_label(ours)}')


def check_arch(backbone, own: Mapping[str, Any], prefix: str,
               note: Optional[LoadNote]) -> None:
    """An error naming both archs if ``own`` is of another arch."""
    if arch_mismatch(backbone, own, prefix) is not None:
        raise _arch_error(note, prefix, infer_arch(own),
                          infer_arch(backbone.state_dict()))


def before_backbone_load(backbone, state_dict: dict, prefix: str,
                         local_metadata: Mapping, unexpected_keys: list,
                         error_msgs: list) -> None:
    """Put the backbone's weights, in this project's keys, under
    ``prefix`` of ``state_dict`` (in place; children load from it)."""
    note = (local_metadata or {}).get(NOTE_KEY)
    own = sub_dict(state_dict, prefix)
    if own and detect_layout(own) in FOREIGN:  # e.g. mmpretrain SE keys
        own = sub_dict(project_keys(own)[0], BACKBONE_PREFIX)
        _replace(state_dict, prefix, own)
    elif not own and note is not None and note.consumed:
        own = sub_dict(note.weights, BACKBONE_PREFIX)
        _replace(state_dict, prefix, own)
        taken = set(note.consumed)
        if note.layout == 'official':
            taken.update(HEAD_ALIASES)
        unexpected_keys[:] = [k for k in unexpected_keys if k not in taken]
    check_arch(backbone, own, prefix, note)
    backbone._load_watch = (prefix, note, own, error_msgs, len(error_msgs))


def _not_loaded_error(backbone, prefix, note, own, problems):
    what = 'the state dict'
    if note is not None:
        layout = LAYOUT_NAMES.get(note.layout, 'no known RepVGG layout')
        what = f'"{note.source}" ({layout})'
    if not own or detect_layout(own) == 'unknown':
        hint = (f' It holds no RepVGG backbone weights under "{prefix}"'
                if prefix else ' It holds no RepVGG backbone weights')
        hint += (f'; layouts loaded directly: {ACCEPTED}. For a whole '
                 f'model\'s checkpoint give init_cfg prefix="backbone.".')
    else:
        hint = (' Use a checkpoint of the same arch and block type '
                '(block_cfg), in any layout of '
                f'{ACCEPTED}.')
    return CheckpointError(
        f'the RepVGGMM backbone{_at(prefix)} would keep its initial '
        f'weights: {what} leaves {"; ".join(problems)}.{hint}')


def after_backbone_load(backbone, incompatible_keys) -> None:
    """Post-hook: every backbone tensor loaded, or an error; one log line."""
    watch = backbone.__dict__.pop('_load_watch', None)
    if watch is None:
        return
    prefix, note, own, error_msgs, start = watch
    missing = [k for k in incompatible_keys.missing_keys
               if k.startswith(prefix)]
    extra = [k for k in incompatible_keys.unexpected_keys
             if k.startswith(prefix) and prefix]
    shapes = [m.split(':')[0].replace('size mismatch for ', '')
              for m in error_msgs[start:] if f'for {prefix}' in m]
    problems = key_problems(missing, extra, shapes)
    if problems:
        raise _not_loaded_error(backbone, prefix, note, own, problems)
    if note is None:
        return
    _log_load(backbone, prefix, note, own)


def _log_load(backbone, prefix: str, note: LoadNote, own: Mapping) -> None:
    form = note.form
    if backbone.deploy and form == 'training':
        form += ' form, fused into the deploy model'
    else:
        form += ' form'
    tail = f'; {note.head}' if note.head else ''
    if any('.post_norm.' in k for k in own):
        tail = ', QARepVGG blocks' + tail
    print_log(
        f'loaded "{note.source}" into the RepVGGMM backbone{_at(prefix)}: '
        f'{LAYOUT_NAMES.get(note.layout, note.layout)}, {form}, '
        f'{arch_label(infer_arch(own))}, {len(backbone.blocks())} blocks '
        f'({len(own)} tensors){tail}', logger='current')


def head_of(note_weights: Mapping[str, Any], layout: str) -> Tuple[str, int]:
    """The file's classifier head: its keys as named in the file, and its
    class count (``('', 0)`` without one)."""
    classes = head_classes(note_weights)
    if classes is None:
        return '', 0
    name = 'linear.*' if layout == 'official' else 'head.fc.*'
    return name, classes


def init_cfg_weights(checkpoint: Mapping[str, Any], source: str,
                     prefix: Optional[str]) -> OrderedDict:
    """The backbone's part of a checkpoint read for ``init_cfg``, noted.

    ``prefix`` as mmengine's ``Pretrained``; a file of another layout
    (official, timm, a bare backbone) is found without it.
    """
    state_dict = state_dict_of(checkpoint)
    note = make_note(state_dict, source)
    if note.layout == 'unknown':
        raise CheckpointError(
            f'init_cfg checkpoint "{source}" holds no RepVGG weights of a '
            f'known layout (first keys: {", ".join(list(state_dict)[:3])}). '
            f'Layouts loaded directly: {ACCEPTED}.')
    prefix = prefix or ''
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    if note.consumed:  # a layout without the prefix: its backbone part
        prefix = BACKBONE_PREFIX
    part = sub_dict(note.weights, prefix or BACKBONE_PREFIX)
    if not part:
        found = sorted({k[:k.index('stem.')] for k in note.weights
                        if 'stem.' in k})
        raise CheckpointError(
            f'init_cfg prefix "{prefix}": no key of "{source}" starts with '
            f'it; its RepVGG backbone weights are under '
            f'{", ".join(repr(p) for p in found) or "no prefix"}. Set '
            f'init_cfg prefix to that.')
    head, classes = head_of(note.weights, note.layout)
    others = len(note.weights) - len(part)
    if head:
        note.head = (f'not loaded: the classifier head {head} ({classes} '
                     f'classes), as init_cfg loads the backbone only')
    elif others:
        note.head = (f'not loaded: {others} tensors outside the backbone, '
                     f'as init_cfg loads the backbone only')
    return with_note(part, note)


def rename_for_model(state_dict: Mapping[str, Any],
                     backbone_prefixes: List[str]) -> dict:
    """A whole-model state dict of any layout in this project's keys, for
    a model whose RepVGGMM backbones sit at ``backbone_prefixes``
    (``['']``: the model is a bare backbone)."""
    renamed, layout, _ = project_keys(state_dict)
    if layout in FOREIGN and backbone_prefixes == ['']:
        return sub_dict(renamed, BACKBONE_PREFIX)
    return renamed


def load_init_cfg(backbone, init_cfg: Mapping[str, Any]) -> None:
    """Load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``
    into ``backbone``: read by mmengine's loader (local file or URL,
    :mod:`repvgg_mm.engine.checkpoint_loader`), any layout, all or error."""
    source = init_cfg['checkpoint']
    checkpoint = CheckpointLoader.load_checkpoint(
        source, map_location=init_cfg.get('map_location', 'cpu'))
    weights = init_cfg_weights(checkpoint, source, init_cfg.get('prefix'))
    backbone.load_state_dict(weights, strict=False)
