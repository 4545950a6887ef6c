"""The config's own evaluator fed by runtime outputs (fp32 and INT8 graphs).

Each graph is run on the val batches (graph inputs: float32 0-255); its
scores are packed into the batch's data samples as the model's ``predict``
does, and the evaluator built from ``cfg.val_evaluator`` (else
``test_evaluator``) computes the metrics. Classifiers (``pred_score`` /
``pred_label``, the mmpretrain head's convention) and segmentors (the
segmentor's ``postprocess_result``) are supported.
"""
import copy
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..errors import ConfigError
from .calibration import evaluation_batches, graph_inputs
from .stats import sqnr_db, sqnr_from_energies


def pack_classification(scores: torch.Tensor, data_samples: Sequence):
    """Class scores (N, classes) into mmpretrain data samples: softmax
    scores and the top-1 label, as ``ClsHead.predict`` packs them."""
    probs = torch.softmax(scores, dim=1)
    labels = probs.argmax(dim=1, keepdim=True)
    out = []
    for sample, prob, label in zip(data_samples, probs, labels):
        sample = copy.copy(sample)
        sample.set_pred_score(prob).set_pred_label(label)
        out.append(sample)
    return out


def packer(model) -> Callable:
    """How the scores of ``model``'s graph go into its data samples."""
    postprocess = getattr(model, 'postprocess_result', None)
    if postprocess is not None:  # mmseg segmentor: logits -> pred_sem_seg
        return lambda logits, samples: postprocess(logits, list(samples))
    if hasattr(model, 'head'):  # mmpretrain classifier
        return pack_classification
    raise ConfigError(f'cannot evaluate a {type(model).__name__}: only '
                      f'mmpretrain classifiers and mmseg segmentors are '
                      f'supported.')


def build_evaluator(cfg):
    metrics = cfg.get('val_evaluator') or cfg.get('test_evaluator')
    if not metrics:
        raise ConfigError('the config defines no val_evaluator or '
                          'test_evaluator; add one, e.g. '
                          'val_evaluator=dict(type="Accuracy", topk=(1, )).')
    return Evaluator(copy.deepcopy(metrics))


def evaluate_sessions(cfg, model, sessions: Dict[str, Callable],
                      progress: bool = True) -> dict:
    """Metrics of each session (name -> callable on graph inputs) over the
    val split, and for the pairs (first session vs each other) the share of
    identical per-image (classifiers) or per-pixel (segmentors) predictions
    and the output SQNR in dB."""
    key, loader = evaluation_batches(cfg)
    evaluators = {name: build_evaluator(cfg) for name in sessions}
    for evaluator in evaluators.values():
        evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
    pack = packer(model)
    names = list(sessions)
    same = {name: 0 for name in names[1:]}
    noise: Dict[str, List[float]] = {name: [0.0, 0.0] for name in names[1:]}
    total = 0
    print_log(f'evaluating {", ".join(names)} on {key} '
              f'({len(loader.dataset)} images)', logger='current')
    bar = ProgressBar(len(loader.dataset)) if progress else None
    for batch in loader:
        inputs = graph_inputs(batch['inputs'])
        outputs = {name: torch.from_numpy(np.asarray(run(inputs)))
                   for name, run in sessions.items()}
        reference = outputs[names[0]]
        for name in names[1:]:
            same[name] += int((outputs[name].argmax(1) ==
                               reference.argmax(1)).sum())
            diff = (outputs[name].double() - reference.double())
            noise[name][0] += float((reference.double()**2).sum())
            noise[name][1] += float((diff**2).sum())
        total += reference.argmax(1).numel()
        for name, scores in outputs.items():
            samples = pack(scores, batch['data_samples'])
            evaluators[name].process(data_samples=samples, data_batch=batch)
        if bar:
            for _ in range(len(inputs)):
                bar.update()
    result = dict(split=key, num_images=len(loader.dataset),
                  metrics={name: {k: float(v) for k, v in ev.evaluate(
                      len(loader.dataset)).items()}
                      for name, ev in evaluators.items()})
    result['agreement'] = {name: same[name] / total for name in names[1:]}
    result['output_sqnr_db'] = {
        name: sqnr_from_energies(s, n) for name, (s, n) in noise.items()}
    return result


def top1(metrics: Dict[str, float]) -> Optional[float]:
    """The headline metric: top-1 (classifiers) or mIoU (segmentors)."""
    for key in ('accuracy/top1', 'mIoU'):
        if key in metrics:
            return float(metrics[key])
    return None


__all__ = ['evaluate_sessions', 'pack_classification', 'sqnr_db', 'top1']
