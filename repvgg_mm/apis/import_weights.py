"""Importing RepVGG weights of the official code, mmpretrain or timm
(``tools/convert_weights.py``)."""
import os.path as osp
from typing import NamedTuple, Optional

from ..converters.layout import head_classes
from ..converters.weight_import import (arch_name, import_state_dict,
                                        load_source)
from ..io.checkpoint import atomic_save
from ..io.output_guard import guard_output
from ..version import __version__


class ImportedWeights(NamedTuple):
    path: str
    arch: str
    form: str  #: 'training' or 'deploy'
    num_tensors: int
    num_classes: Optional[int]  #: None: backbone only


def import_weights(src: str, out: str, fmt: str, arch: str,
                   unsafe_load: bool = False) -> ImportedWeights:
    """Write ``src`` (layout ``fmt``) in this project's keys to ``out``."""
    guard_output(out, 'OUT', inputs={'SRC': src})
    arch = arch_name(arch)
    state_dict, form = import_state_dict(load_source(src, unsafe_load), fmt,
                                         arch)
    meta = dict(repvgg_mm=dict(imported_from=osp.basename(src), format=fmt,
                               arch=arch, form=form, version=__version__))
    atomic_save(dict(state_dict=state_dict, meta=meta), out)
    return ImportedWeights(out, arch, form, len(state_dict),
                           head_classes(state_dict))
