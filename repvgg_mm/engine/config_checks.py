"""Checks of a config that would otherwise fail deep inside mmengine.

Each raises :class:`~repvgg_mm.errors.ConfigError` with one paragraph that
names the problem and the fix: a ``RepVGGMM`` that cannot be built (unknown
arch, ``frozen_stages`` / ``out_indices`` out of range, a norm layer that
cannot be fused), a neck whose input
widths are not the backbone's (mmdet's FPN would only fail at the first
forward, with a conv shape error), a dataset folder or annotation file that
does not exist.
"""
import os
import os.path as osp
from typing import Iterable, List, Sequence, Tuple

import torch

from ..converters.deploy_config import BACKBONE_TYPES
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


def _how_to_prepare(dataset_type) -> str:
    doc = DATASET_DOCS.get(str(dataset_type).split('.')[-1])
    return f'as described in {doc}' if doc else 'the config expects'


def check_repvgg_archs(cfg) -> None:
    """Every ``RepVGGMM`` of the model can be built: it is built on the
    meta device (no memory, no weights), so its argument checks (arch,
    ``out_indices``, ``frozen_stages``, ``norm_cfg``, ...) run before any
    work."""
    for path, backbone in find_module_dicts(cfg.get('model'), BACKBONE_TYPES):
        try:
            parse_arch(backbone.get('arch', 'a0'))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f'{exc} Fix {path}.arch in "{cfg.filename}" (or '
                f'--cfg-options {path}.arch=NAME).') from None
        args = {k: v for k, v in dict(backbone).items() if k != 'type'}
        try:
            with torch.device('meta'):
                RepVGGMM(**args)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f'{exc} Fix {path} in "{cfg.filename}" (or --cfg-options '
                f'{path}.KEY=VALUE).') from None


def _backbones_with_necks(node):
    """``(neck path, backbone dict, neck dict)`` of every model dict under
    ``node`` whose backbone is a ``RepVGGMM`` and that has a neck."""
    found = []
    for path, model in config_dicts(node):
        backbone, neck = model.get('backbone'), model.get('neck')
        neck_path = f'{path}.neck'
        if isinstance(neck, (list, tuple)) and neck:
            neck, neck_path = neck[0], f'{path}.neck[0]'  # the first reads it
        if (isinstance(backbone, dict) and isinstance(neck, dict)
                and type_name(backbone.get('type')) in BACKBONE_TYPES):
            found.append((neck_path, backbone, neck))
    return found


def check_neck_channels(cfg) -> None:
    """A neck with a list of ``in_channels`` (FPN, PAFPN, ...) reads exactly
    the widths of the ``RepVGGMM`` outputs (arch and ``out_indices``)."""
    for neck_path, backbone, neck in _backbones_with_necks(cfg.get('model')):
        given = neck.get('in_channels')
        if not isinstance(given, (list, tuple)):
            continue  # one width for all inputs, or none: nothing to check
        arch = backbone.get('arch', 'a0')
        out_indices = backbone.get('out_indices', (3, ))
        try:
            expected = list(out_channels_of(arch, out_indices))
        except (ValueError, TypeError):
            continue  # reported by check_repvgg_archs / the backbone
        if list(given) != expected:
            name = arch if isinstance(arch, str) else 'the arch dict'
            option = str(expected).replace(' ', '')
            raise ConfigError(
                f'{neck_path}.in_channels={list(given)} does not match the '
                f'backbone: RepVGGMM {name} with out_indices='
                f'{tuple(out_indices)} outputs {expected} channels. Set '
                f'{neck_path}.in_channels={expected} in "{cfg.filename}" '
                f'(or --cfg-options {neck_path}.in_channels={option}).')


def _dataset_leaves(dataset) -> Iterable[dict]:
    """The datasets inside wrappers (RepeatDataset, ConcatDataset, ...)."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            yield from _dataset_leaves(item)
    elif isinstance(dataset, dict):
        inner = dataset.get('dataset', dataset.get('datasets'))
        if inner is not None:
            yield from _dataset_leaves(inner)
        else:
            yield dataset


def _required_paths(dataset: dict) -> List[Tuple[str, str]]:
    """(what, path) pairs a dataset config reads from disk."""
    root = dataset.get('data_root') or ''
    paths = []
    if root:
        paths.append(('data_root', root))
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(('ann_file', osp.join(root, ann_file)))
    prefix = dataset.get('data_prefix')
    prefixes = (prefix.items() if isinstance(prefix, dict) else
                [('data_prefix', prefix)])
    for key, value in prefixes:
        if isinstance(value, str) and value:
            paths.append((f'data_prefix.{key}' if key != 'data_prefix' else
                          key, osp.join(root, value)))
    split = dataset.get('split')
    if root and split and not prefix and not ann_file:
        paths.append(('split', osp.join(root, split)))  # mmpretrain ImageNet
    return paths


def check_dataset_paths(cfg, loaders: Sequence[str]) -> None:
    """The folders/files the given dataloaders read exist."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for dataset in _dataset_leaves(loader_cfg.get('dataset')):
            for what, path in _required_paths(dataset):
                if not osp.exists(path):
                    raise ConfigError(
                        f'dataset path "{path}" ({loader}.dataset.{what}, '
                        f'{dataset.get("type")}) does not exist (relative '
                        f'paths start at the working directory '
                        f'"{os.getcwd()}"). Prepare the dataset '
                        f'{_how_to_prepare(dataset.get("type"))}, or point '
                        f'the config at it, e.g. --cfg-options '
                        f'{loader}.dataset.data_root=/path/to/data.')
