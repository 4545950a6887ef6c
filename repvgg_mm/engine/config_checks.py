"""Checks of a config that would otherwise fail deep inside mmengine, each
a :class:`~repvgg_mm.errors.ConfigError` naming the problem and the fix."""
import os
import os.path as osp
from typing import Iterable, Sequence

import torch

from ..converters.deploy_form import BACKBONE_TYPES
from ..errors import ConfigError
from ..models.arch import parse_arch
from ..models.repvgg import RepVGGMM, out_channels_of
from ..utils.config import config_dicts, find_module_dicts, type_name

#: where the docs explain how to prepare a dataset type
DATASET_DOCS = {
    'ImageNet': 'docs/classification.md ("Preparing ImageNet")',
    'CityscapesDataset': 'docs/segmentation.md ("Preparing Cityscapes")',
    'CocoDataset': 'docs/detection.md ("Preparing COCO")',
}


def check_repvgg_archs(cfg) -> None:
    """Run each ``RepVGGMM``'s argument checks (built on the meta device)."""
    for path, backbone in find_module_dicts(cfg.get('model'), BACKBONE_TYPES):
        what, option = f'{path}.arch', 'arch=NAME'
        try:
            parse_arch(backbone.get('arch', 'a0'))
            what, option = path, 'KEY=VALUE'
            with torch.device('meta'):
                RepVGGMM(**{k: v for k, v in backbone.items() if k != 'type'})
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f'{exc} Fix {what} in "{cfg.filename}" (or `cfg_options='
                f'{path}.{option}`).') from None


def check_neck_channels(cfg) -> None:
    """A neck with a list of ``in_channels`` (FPN, PAFPN, ...) reads exactly
    the widths of the ``RepVGGMM`` outputs (arch and ``out_indices``); mmdet
    would only fail at the first forward."""
    for path, model in config_dicts(cfg.get('model')):
        backbone, neck = model.get('backbone'), model.get('neck')
        neck_path = f'{path}.neck'
        if isinstance(neck, (list, tuple)) and neck:
            neck, neck_path = neck[0], f'{path}.neck[0]'  # the first reads it
        if not (isinstance(backbone, dict) and isinstance(neck, dict)
                and type_name(backbone.get('type')) in BACKBONE_TYPES
                and isinstance(neck.get('in_channels'), (list, tuple))):
            continue
        given = list(neck['in_channels'])
        arch = backbone.get('arch', 'a0')
        out_indices = backbone.get('out_indices', (3, ))
        try:
            expected = list(out_channels_of(arch, out_indices))
        except (ValueError, TypeError):
            continue  # reported by check_repvgg_archs / the backbone
        if given != expected:
            name = arch if isinstance(arch, str) else 'the arch dict'
            option = str(expected).replace(' ', '')
            raise ConfigError(
                f'{neck_path}.in_channels={given} does not match the '
                f'backbone: RepVGGMM {name} with out_indices='
                f'{tuple(out_indices)} outputs {expected} channels. Set '
                f'{neck_path}.in_channels={expected} in "{cfg.filename}" '
                f'(or `cfg_options={neck_path}.in_channels={option}`).')


def _dataset_leaves(dataset) -> Iterable[dict]:
    """The datasets inside wrappers (RepeatDataset, ConcatDataset, ...)."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            yield from _dataset_leaves(item)
    elif isinstance(dataset, dict):
        inner = dataset.get('dataset', dataset.get('datasets'))
        yield from ([dataset] if inner is None else _dataset_leaves(inner))


def _required_paths(dataset: dict) -> Iterable[tuple]:
    """(what, path) pairs a dataset config reads from disk."""
    root = dataset.get('data_root') or ''
    ann_file, prefix = dataset.get('ann_file'), dataset.get('data_prefix')
    if root:
        yield 'data_root', root
    if ann_file:
        yield 'ann_file', osp.join(root, ann_file)
    for key, value in (prefix.items() if isinstance(prefix, dict) else
                       [(None, prefix)]):
        if isinstance(value, str) and value:
            yield (f'data_prefix.{key}' if key else 'data_prefix',
                   osp.join(root, value))
    split = dataset.get('split')
    if root and split and not prefix and not ann_file:
        yield 'split', osp.join(root, split)  # mmpretrain's ImageNet


def check_dataset_paths(cfg, loaders: Sequence[str]) -> None:
    """The folders/files the given dataloaders read exist."""
    for loader in loaders:
        for dataset in _dataset_leaves((cfg.get(loader) or {}).get('dataset')):
            kind = dataset.get('type')
            doc = DATASET_DOCS.get(str(kind).split('.')[-1])
            how = f'as described in {doc}' if doc else 'the config expects'
            for what, path in _required_paths(dataset):
                if not osp.exists(path):
                    raise ConfigError(
                        f'dataset path "{path}" ({loader}.dataset.{what}, '
                        f'{kind}) does not exist (relative paths start at '
                        f'the working directory "{os.getcwd()}"). Prepare '
                        f'the dataset {how}, or point the config at it, e.g. '
                        f'`cfg_options={loader}.dataset.data_root='
                        f'/path/to/data`.')
