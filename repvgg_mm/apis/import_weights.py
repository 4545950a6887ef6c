"""Importing RepVGG weights from the official code, mmpretrain or timm.

:func:`import_weights` is what ``tools/convert_weights.py`` runs; the key
mapping is :mod:`repvgg_mm.converters.weight_import`.
"""
import os.path as osp
from typing import NamedTuple, Optional

from ..converters.weight_import import (arch_name, import_state_dict,
                                        load_source)
from ..errors import ConfigError
from ..io.atomic import check_output_path
from ..io.checkpoint import atomic_save
from ..version import __version__


class ImportedWeights(NamedTuple):
    path: str
    arch: str
    form: str  #: 'training' or 'deploy'
    num_tensors: int
    num_classes: Optional[int]  #: None: backbone only


def import_weights(src: str, out: str, fmt: str, arch: str,
                   unsafe_load: bool = False) -> ImportedWeights:
    """Map the weights in ``src`` (layout ``fmt``: official, mmpretrain,
    timm) of RepVGG ``arch`` to this project's keys and write ``out``."""
    if osp.abspath(out) == osp.abspath(src) or (
            osp.exists(out) and osp.samefile(out, src)):
        raise ConfigError(f'OUT "{out}" is the source file; the tool never '
                          f'overwrites its input. Choose another OUT.')
    check_output_path(out, 'OUT')
    arch = arch_name(arch)
    source = load_source(src, unsafe=unsafe_load)
    state_dict, form = import_state_dict(source, fmt, arch)
    num_classes = (state_dict['head.fc.weight'].shape[0]
                   if 'head.fc.weight' in state_dict else None)
    meta = dict(repvgg_mm=dict(imported_from=osp.basename(src), format=fmt,
                               arch=arch, form=form, version=__version__))
    atomic_save(dict(state_dict=state_dict, meta=meta), out)
    return ImportedWeights(out, arch, form, len(state_dict), num_classes)
