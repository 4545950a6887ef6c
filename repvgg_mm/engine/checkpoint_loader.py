"""mmengine's checkpoint reads, made safe and layout-aware.

``import repvgg_mm`` registers :func:`load_from_local` and
:func:`load_from_http` as mmengine's ``CheckpointLoader`` schemes for local
files and ``http(s)://`` URLs (``register_scheme(..., force=True)``, the
extension point mmengine 0.10.7 offers). Every checkpoint mmengine reads --
``load_from``, resume, ``init_cfg=dict(type='Pretrained')`` of any module --
then

* is read by :func:`repvgg_mm.io.checkpoint.load_checkpoint_file`:
  weights-only, the clear one-paragraph refusal of a file that would run
  code (nothing runs), and a clear error for a missing or corrupt file;
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (``--unsafe-load`` of the tools)
  unpickles fully, as it does for a plain ``torch.load``;
* carries a :class:`~repvgg_mm.converters.pretrained.LoadNote` (its
  source and RepVGG layout), so a ``RepVGGMM`` that loads it finds its
  weights in any layout and says what it loaded (the state dict is not
  renamed: other models load it as before). An official file's classifier
  ``linear.*`` is also offered as ``head.fc.*``.

A URL is downloaded once into torch.hub's cache
(``$TORCH_HOME/hub/checkpoints``, as mmengine's ``load_from_http`` does)
and read from there the same way.
"""
import contextlib
import logging
import os
import os.path as osp
import warnings
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger, print_log
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from ..converters.config_model import build_model
from ..converters.pretrained import HEAD_ALIASES, head_of, make_note, with_note
from ..errors import CheckpointError
from ..io.checkpoint import (full_unpickling_by_default, load_checkpoint_file,
                             state_dict_of, unpickling_fully_requested)


def _head_note(note) -> str:
    head, classes = head_of(note.weights, note.layout)
    if not head:
        return ''
    return (f'the classifier head {head} ({classes} classes) goes to the '
            f"model's head.fc; a head of another class count keeps its "
            f'init (fine-tuning), with mmengine\'s size-mismatch warning')


_announced = []  # the global change is said once per process


def _announce() -> None:
    if not _announced:
        _announced.append(True)
        print_log(
            'repvgg_mm reads mmengine checkpoints (local files, http(s)) '
            'with its own CheckpointLoader schemes, registered by "import '
            'repvgg_mm": weights-only, and any RepVGG layout for RepVGGMM '
            '(repvgg_mm/engine/checkpoint_loader.py)', logger='current')


def noted_checkpoint(checkpoint, source: str):
    """``checkpoint`` with its state dict under ``'state_dict'`` carrying
    a load note (a checkpoint without a state dict: as it is)."""
    _announce()
    if not isinstance(checkpoint, dict):
        return checkpoint
    try:
        state_dict = state_dict_of(checkpoint)
    except CheckpointError:  # not a model checkpoint: left to mmengine
        return checkpoint
    note = make_note(state_dict, source)
    note.head = _head_note(note)
    noted = with_note(state_dict, note)
    if note.layout == 'official':
        for alias in HEAD_ALIASES:
            if alias in note.weights:
                noted[alias] = note.weights[alias]
    if state_dict is checkpoint:
        return noted
    checkpoint = dict(checkpoint)
    if 'state_dict' not in checkpoint:
        checkpoint.pop('model', None)  # mmengine reads 'state_dict' only
    checkpoint['state_dict'] = noted
    return checkpoint


def load_from_local(filename: str, map_location=None):
    """mmengine's local scheme: :func:`load_checkpoint_file`, noted."""
    path = osp.expanduser(filename)
    checkpoint = load_checkpoint_file(
        path, unsafe=unpickling_fully_requested(), map_location=map_location)
    return noted_checkpoint(checkpoint, filename)


def _cached_download(url: str) -> str:
    folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(folder, osp.basename(urlparse(url).path) or 'download')
    if not osp.isfile(path):
        os.makedirs(folder, exist_ok=True)
        # downloads to a temporary file and renames it: never half-written
        torch.hub.download_url_to_file(url, path, progress=False)
    return path


def load_from_http(filename: str, map_location=None):
    """mmengine's http(s) scheme: downloaded once (rank 0 first), then read
    as a local file."""
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _cached_download(filename)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = _cached_download(filename)
    checkpoint = load_checkpoint_file(
        path, unsafe=unpickling_fully_requested(), map_location=map_location)
    return noted_checkpoint(checkpoint, filename)


def register_checkpoint_loaders() -> None:
    """Make the two functions above mmengine's local and http(s) schemes."""
    CheckpointLoader.register_scheme('', load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http,
                                     force=True)


def check_load_from(cfg, path: str, unsafe_load: bool = False) -> None:
    """Do what ``load_from=path`` will do, on the config's model built on
    the meta device (no weights allocated), before any Runner or work dir
    exists: an unreadable, unsafe or unfitting file is the same
    :class:`~repvgg_mm.errors.CheckpointError` now, and the run's load says
    what it loaded (this check is quiet). ``unsafe_load``: read it fully
    unpickled, as the run will."""
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
