"""Checks of a config that would otherwise fail deep inside mmengine.

Each raises :class:`~repvgg_mm.utils.cli.ToolError` with one paragraph that
names the problem and the fix: an unknown RepVGG arch, a dataset folder or
annotation file that does not exist.
"""
import os
import os.path as osp
from typing import Iterable, List, Sequence, Tuple

from ..converters.deploy_config import find_backbone_dicts
from ..models.arch import parse_arch
from ..utils.cli import ToolError

#: where the docs explain how to prepare a dataset type
DATASET_DOCS = {
    'ImageNet': 'docs/classification.md ("Preparing ImageNet")',
    'CityscapesDataset': 'docs/segmentation.md ("Preparing Cityscapes")',
}


def _how_to_prepare(dataset_type) -> str:
    doc = DATASET_DOCS.get(str(dataset_type).split('.')[-1])
    return f'as described in {doc}' if doc else 'the config expects'


def check_repvgg_archs(cfg) -> None:
    """Every ``RepVGGMM`` of the model has a valid ``arch``."""
    for _, backbone in find_backbone_dicts(cfg.get('model')):
        try:
            parse_arch(backbone.get('arch', 'a0'))
        except (ValueError, TypeError) as exc:
            raise ToolError(
                f'{exc} Fix model.backbone.arch in "{cfg.filename}" (or '
                f'--cfg-options model.backbone.arch=NAME).') from None


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
                    raise ToolError(
                        f'dataset path "{path}" ({loader}.dataset.{what}, '
                        f'{dataset.get("type")}) does not exist (relative '
                        f'paths start at the working directory '
                        f'"{os.getcwd()}"). Prepare the dataset '
                        f'{_how_to_prepare(dataset.get("type"))}, or point '
                        f'the config at it, e.g. --cfg-options '
                        f'{loader}.dataset.data_root=/path/to/data.')
