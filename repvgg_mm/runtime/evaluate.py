"""The config's own datasets and evaluator, fed to exported graphs. Images
of every split, calibration included, go through the *evaluation* pipeline
(a quantized graph serves inference inputs); outputs are packed into data
samples as the model's ``predict`` does."""
import copy
import math
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..engine.config_checks import check_dataset_paths
from ..errors import ConfigError, positive_int
from ..utils.config import dataset_pipeline, innermost_dataset

SPLITS = ('train', 'val', 'test')


def loader_key(cfg, split: str) -> str:
    """``'<split>_dataloader'``, checked: a dataset whose paths exist."""
    if split not in SPLITS:
        raise ConfigError(f'unknown split "{split}"; use one of '
                          f'{", ".join(SPLITS)}.')
    key = f'{split}_dataloader'
    if not (cfg.get(key) or {}).get('dataset'):
        present = [s for s in SPLITS if (cfg.get(f'{s}_dataloader') or {})
                   .get('dataset')]
        hint = (f'use `split={present[0]}`' if present else
                'add a dataset and dataloader to the config (e.g. from '
                'configs/_base_/datasets/)')
        raise ConfigError(f'the config defines no {key} with a dataset, so '
                          f'there are no {split} images to read; {hint}.')
    check_dataset_paths(cfg, [key])
    return key


def evaluation_key(cfg) -> str:
    """``'val_dataloader'`` (else ``'test_dataloader'``), checked."""
    for split in ('val', 'test'):
        if (cfg.get(f'{split}_dataloader') or {}).get('dataset'):
            return loader_key(cfg, split)
    raise ConfigError('the config defines no val_dataloader or '
                      'test_dataloader to evaluate on; add one (e.g. from '
                      'configs/_base_/datasets/).')


def build_split_dataset(cfg, split: str):
    """The dataset of ``split`` with the test (else val) pipeline."""
    key = loader_key(cfg, split)
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    dataset_cfg = copy.deepcopy(cfg[key]['dataset'])
    for loader in ('test_dataloader', 'val_dataloader'):
        pipeline = dataset_pipeline((cfg.get(loader) or {}).get('dataset'))
        if pipeline:
            innermost_dataset(dataset_cfg)['pipeline'] = copy.deepcopy(
                pipeline)
            break
    try:
        return DATASETS.build(dataset_cfg)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        # mmpretrain's CustomDataset: RuntimeError 'Found 0 files ...'
        raise ConfigError(f'cannot read the {split} split ({key}.dataset), so '
                          f'there is no calibration data: {exc}. Prepare the '
                          f'dataset or use another `split`.') from None


def graph_inputs(inputs) -> np.ndarray:
    """Pipeline outputs (uint8 CHW tensors) as the graph's input batch."""
    if not isinstance(inputs, torch.Tensor):
        shapes = {tuple(x.shape) for x in inputs}
        if len(shapes) != 1:
            raise ConfigError(
                f'the pipeline gives images of different sizes '
                f'{sorted(shapes)}; the graph needs one size per batch. Make '
                f'the test pipeline resize/crop to a fixed size.')
        inputs = torch.stack(list(inputs))
    return np.ascontiguousarray(inputs.float().numpy())


def calibration_batches(cfg, split: str = 'train', num_images: int = 300,
                        batch_size: int = 16, seed: int = 0,
                        progress: bool = True) -> List[np.ndarray]:
    """``num_images`` seeded random images of ``split``, as graph inputs."""
    positive_int(num_images, 'the number of calibration images')
    dataset = build_split_dataset(cfg, split)
    if len(dataset) == 0:
        raise ConfigError(f'the {split} split has no images, so there is no '
                          f'calibration data; prepare the dataset or use '
                          f'another `split`.')
    if num_images > len(dataset):
        print_log(f'the {split} split has {len(dataset)} images; '
                  f'calibrating on all of them (asked for {num_images})',
                  logger='current')
        num_images = len(dataset)
    indices = torch.randperm(len(dataset), generator=torch.Generator(
    ).manual_seed(seed))[:num_images].tolist()
    print_log(f'reading {num_images} calibration images of the {split} '
              f'split', logger='current')
    bar = ProgressBar(num_images) if progress else None
    images = []
    for index in indices:
        images.append(dataset[index]['inputs'])
        if bar:
            bar.update()
    return [graph_inputs(images[i:i + batch_size])
            for i in range(0, num_images, batch_size)]


def evaluation_batches(cfg):
    """``(key, dataloader)`` of the val (else test) split for the evaluator."""
    key = evaluation_key(cfg)
    return key, Runner.build_dataloader(
        dict(cfg[key], persistent_workers=False))


def _pack_classification(scores: torch.Tensor, data_samples):
    """Softmax scores and top-1 label, as ``ClsHead.predict`` packs them."""
    probs = torch.softmax(scores, dim=1)
    return [copy.copy(sample).set_pred_score(prob).set_pred_label(label)
            for sample, prob, label in zip(
                data_samples, probs, probs.argmax(dim=1, keepdim=True))]


def packer(model) -> Callable:
    """How the scores of ``model``'s graph go into its data samples."""
    postprocess = getattr(model, 'postprocess_result', None)
    if postprocess is not None:  # mmseg segmentor: logits -> pred_sem_seg
        return lambda logits, samples: postprocess(logits, list(samples))
    if hasattr(model, 'head'):  # mmpretrain classifier
        return _pack_classification
    raise ConfigError(f'cannot evaluate a {type(model).__name__}: only '
                      f'mmpretrain classifiers and mmseg segmentors are '
                      f'supported.')


def build_evaluator(cfg, dataset_meta=None) -> Evaluator:
    metrics = cfg.get('val_evaluator') or cfg.get('test_evaluator')
    if not metrics:
        raise ConfigError('the config defines no val_evaluator or '
                          'test_evaluator; add one, e.g. '
                          'val_evaluator=dict(type="Accuracy", topk=(1, )).')
    evaluator = Evaluator(copy.deepcopy(metrics))
    evaluator.dataset_meta = dataset_meta
    return evaluator


def sqnr_from_energies(signal: float, noise: float) -> float:
    """SQNR in dB of the summed squares of reference and difference."""
    if noise == 0:
        return math.inf
    return float(10 * math.log10(signal / noise)) if signal > 0 else -math.inf


def top1(metrics: Dict[str, float]) -> Optional[float]:
    """The headline metric: top-1 (classifiers) or mIoU (segmentors)."""
    for key in ('accuracy/top1', 'mIoU'):
        if key in metrics:
            return float(metrics[key])
    return None


def evaluate_sessions(cfg, model, sessions: Dict[str, Callable],
                      progress: bool = True, loader=None,
                      meta: Optional[dict] = None) -> dict:
    """Metrics of each session (name -> callable on graph inputs) over the
    val split (or ``loader``, of a dataset with ``meta``) and, against the
    first session, each one's share of identical predictions and SQNR."""
    key = None
    if loader is None:
        key, loader = evaluation_batches(cfg)
        meta = getattr(loader.dataset, 'metainfo', None)
        print_log(f'evaluating {", ".join(sessions)} on {key} '
                  f'({len(loader.dataset)} images)', logger='current')
    evaluators = {name: build_evaluator(cfg, meta) for name in sessions}
    pack = packer(model)
    first, *others = sessions
    same, noise = dict.fromkeys(others, 0), dict.fromkeys(others, 0.0)
    signal, total, num = 0.0, 0, 0
    bar = ProgressBar(len(loader.dataset)) if progress and key else None
    for batch in loader:
        inputs = graph_inputs(batch['inputs'])
        outputs = {name: torch.from_numpy(np.asarray(run(inputs)))
                   for name, run in sessions.items()}
        reference = outputs[first].double()
        labels = reference.argmax(1)
        signal += float((reference**2).sum())
        for name in others:
            same[name] += int((outputs[name].argmax(1) == labels).sum())
            noise[name] += float(
                ((outputs[name].double() - reference)**2).sum())
        total += labels.numel()
        num += len(inputs)
        for name, scores in outputs.items():
            evaluators[name].process(data_samples=pack(
                scores, batch['data_samples']), data_batch=batch)
        if bar:
            bar.update(len(inputs))
    return dict(split=key, num_images=num,
                metrics={name: {k: float(v) for k, v in ev.evaluate(
                    num).items()} for name, ev in evaluators.items()},
                agreement={name: same[name] / total for name in others},
                output_sqnr_db={name: sqnr_from_energies(signal, noise[name])
                                for name in others})
