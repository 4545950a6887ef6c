"""Pretrained weights of any layout into ``RepVGGMM``: exact, or an error.
The backbone's load hooks map a foreign layout to this project's keys (from
the :class:`LoadNote` in ``_metadata`` when nothing is under the prefix),
refuse another arch or a backbone tensor left unloaded, and log the load."""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from ..errors import CheckpointError
from ..io.checkpoint import state_dict_of
from ..models.arch import parse_arch
from .layout import (BACKBONE_PREFIX, FOREIGN, LAYOUTS, arch_label,
                     detect_layout, head_classes, infer_arch, key_problems,
                     project_keys, rename_key, sub_dict)

NOTE_KEY = 'repvgg_mm_load_note'
ACCEPTED = ('the official RepVGG code (training / deploy form), timm '
            'repvgg_*, mmpretrain 1.2 RepVGG, this project (RepVGGMM, '
            'QARepVGG)')


@dataclass
class LoadNote:
    """What a state dict was read from, for the backbone that loads it."""

    source: str  #: the file (or URL) the weights came from
    weights: Dict[str, Any]  #: the whole file in this project's keys
    layout: str  #: :func:`~.layout.detect_layout`'s answer
    form: str  #: 'training', 'deploy', 'mixed' or 'none'
    head: str = ''  #: what happens to a classifier head, said in the log

    @property
    def bare(self) -> bool:
        """Its backbone's keys have no ``backbone.`` prefix in the file."""
        return self.layout in ('official', 'timm', 'backbone')


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


def make_note(state_dict: Mapping[str, Any], source: str) -> LoadNote:
    """The note of ``state_dict`` (any layout) read from ``source``."""
    return LoadNote(source, *project_keys(state_dict))


def with_note(state_dict: Mapping[str, Any], note: LoadNote) -> OrderedDict:
    """``state_dict`` (same tensors) carrying ``note`` as its metadata."""
    noted = OrderedDict(state_dict)
    noted._metadata = NotedMetadata(getattr(state_dict, '_metadata', None),
                                    note)
    return noted


def _at(prefix: str) -> str:
    return f' "{prefix[:-1]}"' if prefix else ''


def arch_mismatch(backbone, own: Mapping[str, Any], prefix: str,
                  note: Optional[LoadNote] = None) -> Optional[str]:
    """Both archs if the backbone weights ``own`` are of another arch."""
    theirs = infer_arch(own) if own else None
    ours = theirs and infer_arch(backbone.state_dict())
    if not ours or parse_arch(theirs) == parse_arch(ours):
        return None
    where = f' in "{note.source}"' if note else ''
    return (f'the weights{where} are {arch_label(theirs)}, but the RepVGGMM '
            f'backbone{_at(prefix)} is {arch_label(ours)}')


def before_backbone_load(backbone, state_dict: dict, prefix: str,
                         local_metadata: Mapping, unexpected_keys: list,
                         error_msgs: list) -> None:
    """Put the backbone's weights, in this project's keys, under
    ``prefix`` of ``state_dict`` (in place; children load from it)."""
    note = (local_metadata or {}).get(NOTE_KEY)
    own, mapped = sub_dict(state_dict, prefix), None
    if own and detect_layout(own) in FOREIGN:  # e.g. mmpretrain SE keys
        mapped = sub_dict(project_keys(own)[0], BACKBONE_PREFIX)
    elif not own and note is not None and note.bare:
        mapped = sub_dict(note.weights, BACKBONE_PREFIX)
        # the file's keys (and an official head's aliases) are taken here
        unexpected_keys[:] = [k for k in unexpected_keys if rename_key(
            k, note.layout) not in note.weights]
    if mapped is not None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[key]
        state_dict.update({prefix + k: v for k, v in mapped.items()})
        own = mapped
    mismatch = arch_mismatch(backbone, own, prefix, note)
    if mismatch:
        raise CheckpointError(
            f'{mismatch}. Build the backbone with the arch of the weights '
            f'(model.backbone.arch), or use a checkpoint of its arch.')
    backbone._load_watch = (prefix, note, own, error_msgs, len(error_msgs))


def after_backbone_load(backbone, incompatible_keys) -> None:
    """Post-hook: every backbone tensor loaded, or an error; one log line."""
    watch = backbone.__dict__.pop('_load_watch', None)
    if watch is None:
        return
    prefix, note, own, error_msgs, start = watch
    problems = key_problems(
        [k for k in incompatible_keys.missing_keys if k.startswith(prefix)],
        [k for k in incompatible_keys.unexpected_keys
         if prefix and k.startswith(prefix)],
        [m.split(':')[0].replace('size mismatch for ', '')
         for m in error_msgs[start:] if f'for {prefix}' in m])
    if problems:
        what = (f'"{note.source}" ({LAYOUTS[note.layout].name})'
                if note else 'the state dict')
        if not own or detect_layout(own) == 'unknown':
            under = f' under "{prefix}"' if prefix else ''
            hint = (f'It holds no RepVGG backbone weights{under}; layouts '
                    f'loaded directly: {ACCEPTED}. For a whole model\'s '
                    f'checkpoint give init_cfg prefix="backbone.".')
        else:
            hint = ('Use a checkpoint of the same arch and block type '
                    f'(block_cfg), in any layout of {ACCEPTED}.')
        raise CheckpointError(
            f'the RepVGGMM backbone{_at(prefix)} would keep its initial '
            f'weights: {what} leaves {"; ".join(problems)}. {hint}')
    if note is None:
        return
    form = note.form + ' form'
    if backbone.deploy and note.form == 'training':
        form += ', fused into the deploy model'
    tail = f'; {note.head}' if note.head else ''
    if any('.post_norm.' in k for k in own):
        tail = ', QARepVGG blocks' + tail
    print_log(
        f'loaded "{note.source}" into the RepVGGMM backbone{_at(prefix)}: '
        f'{LAYOUTS[note.layout].name}, {form}, '
        f'{arch_label(infer_arch(own))}, {len(backbone.blocks())} blocks '
        f'({len(own)} tensors){tail}', logger='current')


def head_of(note: LoadNote) -> str:
    """The file's classifier head and its class count (``''``: none)."""
    classes = head_classes(note.weights)
    if classes is None:
        return ''
    name = 'linear.*' if note.layout == 'official' else 'head.fc.*'
    return f'the classifier head {name} ({classes} classes)'


def load_init_cfg(backbone, init_cfg: Mapping[str, Any]) -> None:
    """Load ``init_cfg`` (``type='Pretrained'``) of any layout into
    ``backbone``, all or error; bare backbone weights need no prefix."""
    source, prefix = init_cfg['checkpoint'], init_cfg.get('prefix') or ''
    state_dict = state_dict_of(CheckpointLoader.load_checkpoint(
        source, map_location=init_cfg.get('map_location', 'cpu')))
    note = make_note(state_dict, source)
    if note.layout == 'unknown':
        raise CheckpointError(
            f'init_cfg checkpoint "{source}" holds no RepVGG weights of a '
            f'known layout (first keys: {", ".join(list(state_dict)[:3])}). '
            f'Layouts loaded directly: {ACCEPTED}.')
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    part = sub_dict(note.weights, BACKBONE_PREFIX if note.bare or not prefix
                    else prefix)
    if not part:
        found = sorted({k[:k.index('stem.')] for k in note.weights
                        if 'stem.' in k})
        raise CheckpointError(
            f'init_cfg prefix "{prefix}": no key of "{source}" starts with '
            f'it; its RepVGG backbone weights are under '
            f'{", ".join(repr(p) for p in found) or "no prefix"}. Set '
            f'init_cfg prefix to that.')
    others = len(note.weights) - len(part)
    what = head_of(note) or (
        f'{others} tensors outside the backbone' if others else '')
    if what:
        note.head = f'not loaded: {what}, as init_cfg loads the backbone only'
    backbone.load_state_dict(with_note(part, note), strict=False)
