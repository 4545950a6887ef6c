"""From a trained checkpoint to the fastest serving that keeps its accuracy
(``tools/deploy.py``): export, quantize, then one call into
:mod:`repvgg_mm.runtime.servings` per stage (build, evaluate, time,
select); the output folder is checked before any work and written all or
nothing at the end."""
import copy
import datetime
import json
import os
import os.path as osp
import platform
import shlex
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.utils import Timer

from ..converters.config_model import build_model, input_channels, input_size
from ..errors import ConfigError, positive_int
from ..io.atomic import atomic_directory, atomic_write_json
from ..io.checkpoint import atomic_save
from ..io.output_guard import guard_output
from ..io.weights import read_weights
from ..runtime import servings as sv
from ..runtime.evaluate import (build_split_dataset, calibration_batches,
                                evaluation_key, graph_inputs, loader_key)
from ..runtime.graph import InferenceGraph
from ..runtime.onnx_export import save_openvino
from ..runtime.session import onnx_metadata
from ..utils.config import load_config
from ..utils.cpu import cpu_features, cpu_name
from .export import export_model, fuse, image_like, load_model

RANDOM = 'random'
TOOL = 'tools/deploy.py'


def check_out_dir(out_dir: str, inputs: Dict[str, str]) -> None:
    """``out_dir`` can be written: new, empty, or an earlier output of this
    tool not holding an input. Nothing is created."""
    guard_output(out_dir, 'OUT_DIR', inputs, folder=True)
    path = osp.abspath(out_dir)
    for given in inputs.values():
        if osp.abspath(given).startswith(path + os.sep):
            raise ConfigError(f'OUT_DIR "{out_dir}" holds the input '
                              f'"{given}"; choose another folder.')
    if osp.isdir(path) and os.listdir(path):
        try:
            with open(osp.join(path, 'report.json')) as f:
                tool = json.load(f).get('tool')
        except (OSError, ValueError, AttributeError):
            tool = None
        if tool != TOOL:
            raise ConfigError(
                f'OUT_DIR "{out_dir}" is a non-empty folder that was not '
                f'written by {TOOL}; choose a new or empty folder '
                f'(nothing was written).')


def versions() -> Dict[str, str]:
    """The versions the figures were measured with."""
    out = dict(python=platform.python_version(), torch=torch.__version__,
               platform=platform.platform())
    for name in ('onnxruntime', 'openvino', 'nncf', 'mmengine',
                 'mmpretrain', 'mmseg'):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # not installed: not part of this run
            pass
    return out


def write_out_dir(out_dir: str, report: dict, models: Dict[str, str],
                  fp32_graph: str,
                  documents: Optional[Callable[[dict, str], None]] = None
                  ) -> None:
    """The chosen model as ``model.*`` (a torch serving: the fp32 graph),
    ``report.json`` and ``documents(report, folder)``'s files, all or
    nothing."""
    with atomic_directory(out_dir) as tmp:
        chosen = report['chosen']
        report['shipped'] = []
        if chosen:
            model = models.get(chosen, fp32_graph)
            stem, suffix = osp.splitext(model)
            pairs = [(model, 'model' + suffix)] + (
                [(stem + '.bin', 'model.bin')] if suffix == '.xml' else [])
            for source, name in pairs:
                shutil.copyfile(source, osp.join(tmp, name))
                report['shipped'].append(name)
        atomic_write_json(report, osp.join(tmp, 'report.json'))
        if documents is not None:
            documents(report, tmp)


def _check_numbers(max_drop, batch_size, rounds, min_time, calib, threads):
    if max_drop is not None and not (isinstance(max_drop, (int, float)) and
                                     max_drop >= 0):
        raise ConfigError(f'`max_drop` must be a number of points >= 0, '
                          f'got {max_drop!r}.')
    for name, value in (('`batch_size`', batch_size), ('`rounds`', rounds),
                        ('`calib`', calib),
                        ('`threads`', 1 if threads is None else threads)):
        positive_int(value, name)
    if not min_time > 0:
        raise ConfigError(f'`min_time` must be > 0 seconds, got {min_time!r}.')


def _timing_batch(cfg, batch_size: int, speed_only: bool) -> np.ndarray:
    """``batch_size`` val images (repeated if fewer), or image-like noise
    without a val split (speed only)."""
    if speed_only:
        return image_like((batch_size, input_channels(cfg)) +
                          tuple(input_size(cfg)[0])).numpy()
    dataset = build_split_dataset(cfg, 'val')
    batch = graph_inputs([dataset[i]['inputs'] for i in range(
        min(batch_size, len(dataset)))])
    return np.resize(batch, (batch_size, ) + batch.shape[1:])


def deploy_model(config: str,
                 checkpoint: str,
                 out_dir: str,
                 max_drop: float = 0.5,
                 batch_size: int = 32,
                 servings: Optional[Sequence[str]] = None,
                 rounds: int = 5,
                 min_time: float = 1.0,
                 calib: int = 300,
                 speed_only: bool = False,
                 threads: Optional[int] = None,
                 cfg_options: Optional[dict] = None,
                 unsafe_load: bool = False,
                 command: Optional[str] = None,
                 progress: bool = True,
                 documents: Optional[Callable[[dict, str], None]] = None
                 ) -> dict:
    """Build, evaluate and time every serving of ``checkpoint``; write the
    fastest within ``max_drop`` points of the fp32 metric to ``out_dir``.

    ``speed_only``: no evaluation (no val / train split needed; random
    calibration); ``checkpoint='random'`` then times the config's initial
    weights. ``documents(report, folder)`` may add files to the output
    before it is moved into place (``tools/deploy.py``: report.md, model
    card, plot). Returns the report (``report['met']``: a serving met the
    bound; otherwise ``report['closest']`` names the nearest miss).
    """
    timer = Timer()
    if speed_only:
        max_drop = None
    _check_numbers(max_drop, batch_size, rounds, min_time, calib, threads)
    candidates = sv.check_servings(list(servings) if servings else None)
    names = [sv.FP32_SERVING] + [n for n in candidates
                                 if n != sv.FP32_SERVING]
    check_out_dir(out_dir, {'CONFIG': config, 'CHECKPOINT': checkpoint})
    cfg = load_config(config, cfg_options)
    if not speed_only:
        evaluation_key(cfg)
        loader_key(cfg, 'train')
    if checkpoint == RANDOM and not speed_only:
        raise ConfigError('CHECKPOINT "random" (the initial weights) has no '
                          'accuracy to keep; use it with `speed_only=True`.')
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg() if hasattr(os, 'getloadavg') else None
    with tempfile.TemporaryDirectory(prefix='repvgg-deploy-') as work:
        ckpt_file = checkpoint
        if checkpoint == RANDOM:  # the config's initial weights
            ckpt_file = osp.join(work, 'random.pth')
            atomic_save(dict(state_dict=build_model(cfg).state_dict()),
                        ckpt_file)
        trained = load_model(cfg, read_weights(ckpt_file, unsafe_load)[1],
                             ckpt_file)
        model = copy.deepcopy(trained)
        if not fuse(model):
            trained = None  # nothing to fuse: no training-form baseline
        graph = InferenceGraph.of(model)
        if graph.task not in ('classifier', 'segmentor'):
            raise ConfigError(
                f'deploying a {graph.task} is not yet supported: its metric '
                f'cannot be computed from the exported graph (box decoding '
                f'and NMS are outside it). Export it with tools/export.py.')
        batch = _timing_batch(cfg, batch_size, speed_only)
        onnx_path = osp.join(work, 'model.onnx')
        export_model(config, ckpt_file, onnx_path, dynamic=True, verify=True,
                     cfg_options=cfg_options, unsafe_load=unsafe_load)
        save_openvino(onnx_path, osp.join(work, 'model.xml'),
                      onnx_metadata(onnx_path))
        if speed_only:
            calib_batches = [image_like(batch.shape, seed=s).numpy()
                             for s in (1, 2)]
        else:
            calib_batches = calibration_batches(cfg, 'train', calib, 16, 0,
                                                progress)
        models = sv.quantize_models(names, work, calib_batches)
        graphs = dict.fromkeys(names, graph)
        if trained is not None:
            names.insert(0, sv.BASELINE)
            graphs[sv.BASELINE] = InferenceGraph.of(trained)
        rows: List[dict] = []
        built = sv.build_servings(names, graphs, models, batch, threads, rows)
        reference, split, control = None, None, None
        if not speed_only:
            reference, split, control = sv.evaluate_servings(
                cfg, model, built, rows, models, work, calib_batches, batch,
                threads, max_drop, progress)
            if control:
                candidates.append('openvino-int8-ac')
        baseline = sv.BASELINE if sv.BASELINE in built else sv.FP32_SERVING
        speed = sv.measure(rows, built, graph, batch, baseline, rounds,
                           min_time, work, threads, progress)
        choice = sv.select(rows, max_drop, candidates)
        report = dict(
            tool=TOOL,
            command=command or shlex.join(['python'] + sys.argv),
            started=started.isoformat(timespec='seconds'), config=config,
            checkpoint=checkpoint, task=graph.task, speed_only=speed_only,
            metric_name=(None if speed_only else 'mIoU' if graph.task ==
                         'segmentor' else 'accuracy/top1'),
            eval_split=split, max_drop=max_drop, reference_metric=reference,
            baseline=baseline, batch_size=batch_size,
            input_shape=list(batch.shape), rounds=rounds, min_time=min_time,
            calibration=dict(split=None if speed_only else 'train',
                             images=sum(len(b) for b in calib_batches)),
            **speed, servings=rows, accuracy_control=control and
            dict(layers=control['layers'],
                 plain_layers=control['plain_layers']),
            host=dict(cpu=cpu_name(), cpu_features=cpu_features(),
                      threads=threads, versions=versions(),
                      load_avg_start=load_start and [round(x, 2) for x in
                                                     load_start],
                      load_avg_end=[round(x, 2) for x in os.getloadavg()]
                      if load_start else None),
            graph_metadata=onnx_metadata(onnx_path), **choice)
        report['seconds'] = round(timer.since_start(), 1)
        write_out_dir(out_dir, report, models, onnx_path, documents)
    return report
