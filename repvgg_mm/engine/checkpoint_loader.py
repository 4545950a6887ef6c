"""mmengine's checkpoint reads (``load_from``, resume, ``init_cfg``) made
safe and layout-aware: weights-only, and noted with their source and layout
for ``RepVGGMM``."""
import contextlib
import logging
import os
import os.path as osp
import warnings
from functools import lru_cache
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger, print_log
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from ..converters.config_model import build_model
from ..converters.layout import HEAD_PREFIX
from ..converters.pretrained import head_of, make_note, with_note
from ..errors import CheckpointError
from ..io.checkpoint import (full_unpickling_by_default, load_checkpoint_file,
                             state_dict_of, unpickling_fully_requested)


@lru_cache(maxsize=None)
def _announce() -> None:  # the global change is said once per process
    print_log(
        'repvgg_mm reads mmengine checkpoints (local files, http(s)) with its '
        'own CheckpointLoader schemes, registered by "import repvgg_mm": '
        'weights-only, and any RepVGG layout for RepVGGMM '
        '(repvgg_mm/engine/checkpoint_loader.py)', logger='current')


def noted_checkpoint(checkpoint, source: str):
    """``checkpoint`` with its state dict under ``'state_dict'`` carrying
    a load note (a checkpoint without a state dict: as it is). An official
    file's classifier ``linear.*`` is also offered as ``head.fc.*``."""
    _announce()
    try:
        state_dict = state_dict_of(checkpoint)
    except CheckpointError:  # not a model checkpoint: left to mmengine
        return checkpoint
    note = make_note(state_dict, source)
    head = head_of(note)
    if head:
        note.head = (f"{head} goes to the model's head.fc; a head of another "
                     f'class count keeps its init (fine-tuning), with '
                     f"mmengine's size-mismatch warning")
    noted = with_note(state_dict, note)
    if note.layout == 'official':
        noted.update({k: v for k, v in note.weights.items()
                      if k.startswith(HEAD_PREFIX)})
    if state_dict is checkpoint:
        return noted
    checkpoint = dict(checkpoint)
    if 'state_dict' not in checkpoint:
        checkpoint.pop('model', None)  # mmengine reads 'state_dict' only
    checkpoint['state_dict'] = noted
    return checkpoint


def _read(path: str, source: str, map_location):
    return noted_checkpoint(
        load_checkpoint_file(path, unsafe=unpickling_fully_requested(),
                             map_location=map_location), source)


def load_from_local(filename: str, map_location=None):
    """mmengine's local scheme: :func:`load_checkpoint_file`, noted."""
    return _read(osp.expanduser(filename), filename, map_location)


def load_from_http(filename: str, map_location=None):
    """mmengine's http(s) scheme: cached by torch.hub, read as a local file."""
    folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(folder,
                    osp.basename(urlparse(filename).path) or 'download')
    rank, world_size = get_dist_info()
    if world_size > 1 and rank > 0:
        torch.distributed.barrier()  # rank 0 has downloaded it
    if not osp.isfile(path):
        os.makedirs(folder, exist_ok=True)
        # downloads to a temporary file and renames it: never half-written
        torch.hub.download_url_to_file(filename, path, progress=False)
    if world_size > 1 and rank == 0:
        torch.distributed.barrier()
    return _read(path, filename, map_location)


def register_checkpoint_loaders() -> None:
    """Make the two functions above mmengine's local and http(s) schemes."""
    CheckpointLoader.register_scheme('', load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http,
                                     force=True)


def check_load_from(cfg, path: str, unsafe_load: bool = False) -> None:
    """Do quietly what ``load_from=path`` will do, on the config's model
    built on the meta device: a bad file fails before any Runner exists."""
    model = build_model(cfg, device='meta')
    logger = MMLogger.get_current_instance()
    level = logger.level
    unpickling = (full_unpickling_by_default() if unsafe_load else
                  contextlib.nullcontext())
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), unpickling:
            # copying into meta tensors is a no-op, which torch warns about
            warnings.simplefilter('ignore', UserWarning)
            load_checkpoint(model, path, map_location='cpu', strict=False,
                            logger='silent')
    finally:
        logger.setLevel(level)
