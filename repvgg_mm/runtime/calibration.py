"""Real images of a config's dataset, as the exported graph takes them.

The exported graph holds the config's data preprocessor, so its input is a
float32 NCHW batch in 0-255, channels in the order the pipeline loads them.
:func:`calibration_batches` reads ``N`` images of one split through the
config's own dataset and evaluation pipeline; :func:`evaluation_batches`
iterates the config's val (or test) dataloader for the evaluator.

Calibration uses the split's images with the *evaluation* pipeline (resize /
crop, no random augmentation): a quantized graph serves inference inputs, so
its activation ranges are measured on inputs of that kind.
"""
import copy
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..engine.config_checks import check_dataset_paths
from ..errors import ConfigError

SPLITS = ('train', 'val', 'test')


def loader_key(cfg, split: str) -> str:
    """``'<split>_dataloader'`` of ``cfg``, checked to exist with a dataset
    whose paths exist."""
    if split not in SPLITS:
        raise ConfigError(f'unknown split "{split}"; use one of '
                          f'{", ".join(SPLITS)}.')
    key = f'{split}_dataloader'
    loader = cfg.get(key)
    if not loader or not loader.get('dataset'):
        present = [s for s in SPLITS if (cfg.get(f'{s}_dataloader') or {})
                   .get('dataset')]
        hint = (f'use --split {present[0]}' if present else
                'add a dataset and dataloader to the config (e.g. from '
                'configs/_base_/datasets/)')
        raise ConfigError(f'the config defines no {key} with a dataset, so '
                          f'there are no {split} images to read; {hint}.')
    check_dataset_paths(cfg, [key])
    return key


def _leaf_with_pipeline(dataset: dict) -> dict:
    """The innermost dataset dict of ``dataset`` (through wrappers such as
    RepeatDataset) that has a pipeline."""
    node = dataset
    while isinstance(node, dict) and 'pipeline' not in node and isinstance(
            node.get('dataset'), dict):
        node = node['dataset']
    return node


def evaluation_pipeline(cfg) -> Optional[list]:
    """The pipeline of the test (else val) dataloader's dataset."""
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset')
        if isinstance(dataset, dict):
            pipeline = _leaf_with_pipeline(dataset).get('pipeline')
            if pipeline:
                return copy.deepcopy(pipeline)
    return None


def build_split_dataset(cfg, split: str):
    """The dataset of ``split`` with the evaluation pipeline."""
    from mmengine.registry import DATASETS, init_default_scope
    key = loader_key(cfg, split)
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    dataset_cfg = copy.deepcopy(cfg[key]['dataset'])
    pipeline = evaluation_pipeline(cfg)
    if pipeline is not None:
        _leaf_with_pipeline(dataset_cfg)['pipeline'] = pipeline
    try:
        return DATASETS.build(dataset_cfg)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        # mmpretrain's CustomDataset: RuntimeError 'Found 0 files ...'
        raise ConfigError(f'cannot read the {split} split ({key}.dataset), so '
                          f'there is no calibration data: {exc}. Prepare the '
                          f'dataset or use another --split.') from None


def graph_inputs(inputs) -> np.ndarray:
    """A batch of pipeline outputs (uint8 CHW tensors) as the graph input:
    float32 NCHW, 0-255."""
    if isinstance(inputs, torch.Tensor):
        batch = inputs
    else:
        shapes = {tuple(x.shape) for x in inputs}
        if len(shapes) != 1:
            raise ConfigError(
                f'the pipeline gives images of different sizes '
                f'{sorted(shapes)}; the graph needs one size per batch. Make '
                f'the test pipeline resize/crop to a fixed size.')
        batch = torch.stack(list(inputs))
    return np.ascontiguousarray(batch.float().numpy())


def calibration_batches(cfg, split: str = 'train', num_images: int = 300,
                        batch_size: int = 16, seed: int = 0,
                        progress: bool = True) -> List[np.ndarray]:
    """``num_images`` images of ``split`` (a seeded random subset, so all
    classes appear), read through the config's dataset and evaluation
    pipeline, as graph inputs in batches of ``batch_size``."""
    from mmengine.logging import print_log
    from mmengine.utils import ProgressBar
    if isinstance(num_images, bool) or not isinstance(
            num_images, int) or num_images < 1:
        raise ConfigError(f'the number of calibration images must be a '
                          f'positive whole number, got {num_images!r}.')
    dataset = build_split_dataset(cfg, split)
    if len(dataset) == 0:
        raise ConfigError(f'the {split} split has no images, so there is no '
                          f'calibration data; prepare the dataset or use '
                          f'another --split.')
    if num_images > len(dataset):
        print_log(f'the {split} split has {len(dataset)} images; '
                  f'calibrating on all of them (asked for {num_images})',
                  logger='current')
        num_images = len(dataset)
    order = torch.randperm(len(dataset),
                           generator=torch.Generator().manual_seed(seed))
    indices = order[:num_images].tolist()
    print_log(f'reading {num_images} calibration images of the {split} '
              f'split', logger='current')
    bar = ProgressBar(num_images) if progress else None
    batches, chunk = [], []
    for index in indices:
        chunk.append(dataset[index]['inputs'])
        if bar:
            bar.update()
        if len(chunk) == batch_size:
            batches.append(graph_inputs(chunk))
            chunk = []
    if chunk:
        batches.append(graph_inputs(chunk))
    return batches


def evaluation_key(cfg) -> str:
    """``'val_dataloader'`` (else ``'test_dataloader'``) of ``cfg``, checked
    as :func:`loader_key` does."""
    for split in ('val', 'test'):
        if (cfg.get(f'{split}_dataloader') or {}).get('dataset'):
            return loader_key(cfg, split)
    raise ConfigError('the config defines no val_dataloader or '
                      'test_dataloader to evaluate on; add one (e.g. from '
                      'configs/_base_/datasets/).')


def evaluation_batches(cfg) -> Tuple[str, Iterator]:
    """``(key, dataloader)`` of the val split (else test) of ``cfg``: what
    the evaluator is fed; each batch is ``dict(inputs, data_samples)``."""
    from mmengine.runner import Runner
    key = evaluation_key(cfg)
    loader_cfg = copy.deepcopy(cfg[key])
    loader_cfg['persistent_workers'] = False
    return key, Runner.build_dataloader(loader_cfg)
