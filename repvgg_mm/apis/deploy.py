"""From a trained checkpoint to the fastest serving that keeps its accuracy.

:func:`deploy_model` is what ``tools/deploy.py`` runs: it fuses and exports
the model, builds every serving this machine can run
(:mod:`repvgg_mm.runtime.servings`), evaluates each with the config's own
evaluator on the val split, quantizes with calibration on the train split
(with NNCF accuracy control when plain INT8 misses the bound), times every
serving and the precision ceilings in the same alternating rounds, picks
the fastest within ``max_drop`` and writes ``out_dir`` atomically.
"""
import datetime
import os
import os.path as osp
import shlex
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from ..converters.config_model import build_model, input_channels, input_size
from ..deploy import count_repvgg_blocks, switch_to_deploy
from ..errors import ConfigError
from ..io.checkpoint import atomic_save, load_checkpoint_file, state_dict_of
from ..io.weights import (load_state_dict_strict, repvgg_form,
                          strip_wrapper_prefix)
from ..runtime import deploy_output as output
from ..runtime.calibration import (build_split_dataset, calibration_batches,
                                   evaluation_key, graph_inputs, loader_key)
from ..runtime.ceiling import ceiling_entries, dominant_shape, layers_of
from ..runtime.cpu import cpu_features, cpu_name
from ..runtime.graph import InferenceGraph, task_of
from ..runtime.measure import speed_figures, time_servings
from ..runtime.selection import select
from ..runtime.servings import (BASELINE, FP32_SERVING, SERVINGS, build_order,
                                check_servings, runtime_serving, torch_serving)
from ..utils.config import load_config
from .export import image_like

RANDOM = 'random'


def _check_numbers(max_drop, batch_size, rounds, min_time, calib):
    if max_drop is not None and not (isinstance(max_drop, (int, float)) and
                                     max_drop >= 0):
        raise ConfigError(f'--max-drop must be a number of points >= 0, '
                          f'got {max_drop!r}.')
    for name, value in (('--batch-size', batch_size), ('--rounds', rounds),
                        ('--calib', calib)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f'{name} must be a positive whole number, got '
                              f'{value!r}.')
    if not min_time > 0:
        raise ConfigError(f'--min-time must be > 0 seconds, got {min_time!r}.')


def _models(cfg, checkpoint: str, unsafe_load: bool, work: str):
    """``(training-form model or None, deploy-form model, checkpoint file
    to export)``; ``checkpoint == 'random'``: the config's initial
    weights, saved in ``work``."""
    model = build_model(cfg).eval()
    if checkpoint == RANDOM:
        checkpoint = osp.join(work, 'random.pth')
        atomic_save(dict(state_dict=model.state_dict()), checkpoint)
    state = strip_wrapper_prefix(state_dict_of(load_checkpoint_file(
        checkpoint, unsafe=unsafe_load)))
    form = repvgg_form(state)
    if form == 'mixed':
        raise ConfigError(f'"{checkpoint}" holds both fused and training-form '
                          f'RepVGG blocks; it was not written by this '
                          f'project\'s tools.')
    if form != 'deploy':
        load_state_dict_strict(model, state, checkpoint)
        if not count_repvgg_blocks(model, deployed=False):
            return None, model, checkpoint  # nothing to fuse: no baseline
        return model, switch_to_deploy(model).eval(), checkpoint
    from ..converters.deploy_config import deploy_config
    deployed = build_model(deploy_config(cfg)).eval()
    load_state_dict_strict(deployed, state, checkpoint)
    return None, deployed, checkpoint


def _export_graphs(config: str, checkpoint: str, work: str, cfg_options,
                   unsafe_load: bool) -> dict:
    """The fp32 graph (dynamic N, H, W; verified against torch) as ONNX
    and OpenVINO IR in ``work``."""
    from ..runtime.openvino_export import save_openvino
    from .export import export_model
    files = dict(onnx=osp.join(work, 'model.onnx'),
                 xml=osp.join(work, 'model.xml'))
    export_model(config, checkpoint, files['onnx'], dynamic=True,
                 verify=True, cfg_options=cfg_options,
                 unsafe_load=unsafe_load)
    save_openvino(files['onnx'], files['xml'],
                  output.graph_metadata(files['onnx']))
    return files


def _timing_batch(cfg, batch_size: int, shape, channels: int,
                  speed_only: bool) -> np.ndarray:
    """``batch_size`` val images (repeated if fewer), or image-like noise
    without a val split (speed only)."""
    if speed_only:
        return image_like((batch_size, channels) + tuple(shape)).numpy()
    dataset = build_split_dataset(cfg, 'val')
    images = [dataset[i % len(dataset)]['inputs'] for i in range(
        min(batch_size, len(dataset)))]
    batch = graph_inputs(images)
    reps = -(-batch_size // len(batch))
    return np.ascontiguousarray(np.concatenate([batch] * reps)[:batch_size])


def _build(names: List[str], graphs: dict, models: dict, batch: np.ndarray,
           threads: int, rows: List[dict]) -> dict:
    built = {}
    for name in names:
        row = dict(name=name, runtime=SERVINGS[name][0],
                   precision=SERVINGS[name][1])
        rows.append(row)
        try:
            if name.startswith('torch'):
                serving = torch_serving(name, graphs[name], batch[:1])
            else:
                serving = runtime_serving(name, models[name], threads)
                row['model'] = osp.basename(models[name])
            serving.run(batch[:3])  # another batch size, as evaluation has
            built[name] = serving
        except Exception as exc:  # a serving this model cannot do here
            row['error'] = f'{type(exc).__name__}: ' + (
                str(exc).strip().splitlines() or [''])[0][:300]
            print_log(f'{name}: {row["error"]}', logger='current')
    return built


def _evaluate(cfg, model, servings: dict, rows: List[dict],
              reference: Optional[float], progress: bool) -> float:
    from ..runtime.evaluate import evaluate_sessions, top1
    sessions = {FP32_SERVING: servings[FP32_SERVING].run}
    sessions.update({n: s.run for n, s in servings.items()
                     if n != FP32_SERVING})
    result = evaluate_sessions(cfg, model, sessions, progress)
    if reference is None:
        reference = top1(result['metrics'][FP32_SERVING])
    for row in rows:
        if row['name'] in result['metrics']:
            row['metric'] = top1(result['metrics'][row['name']])
            row['metrics'] = result['metrics'][row['name']]
            row['drop'] = None if row['metric'] is None or reference is \
                None else reference - row['metric']
            row['agreement'] = result['agreement'].get(row['name'], 1.0)
            row['output_sqnr_db'] = result['output_sqnr_db'].get(row['name'])
    return reference, result['split']


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
                 progress: bool = True) -> dict:
    """Build, evaluate and time every serving of ``checkpoint``; write the
    fastest within ``max_drop`` points of the fp32 metric to ``out_dir``.

    ``speed_only``: no evaluation (no val / train split needed; random
    calibration); ``checkpoint='random'`` then times the config's initial
    weights. Returns the report (``report['met']``: a serving met the
    bound; otherwise ``report['closest']`` names the nearest miss).
    """
    start = time.perf_counter()
    if speed_only:
        max_drop = None
    _check_numbers(max_drop, batch_size, rounds, min_time, calib)
    candidates = check_servings(list(servings) if servings else None)
    names = build_order(candidates)
    output.check_out_dir(out_dir, [config, checkpoint])
    cfg = load_config(config, cfg_options)
    if not speed_only:
        evaluation_key(cfg)
        loader_key(cfg, 'train')
    if checkpoint == RANDOM and not speed_only:
        raise ConfigError('CHECKPOINT "random" (the initial weights) has no '
                          'accuracy to keep; use it with --speed-only.')
    if checkpoint != RANDOM and not osp.isfile(checkpoint):
        raise ConfigError(f'checkpoint "{checkpoint}" does not exist.')
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg() if hasattr(os, 'getloadavg') else None
    with tempfile.TemporaryDirectory(prefix='repvgg-deploy-') as work:
        train_model, model, ckpt_file = _models(cfg, checkpoint, unsafe_load,
                                                work)
        task = task_of(model)
        if task not in ('classifier', 'segmentor'):
            raise ConfigError(
                f'deploying a {task} is not yet supported: its metric '
                f'cannot be computed from the exported graph (box decoding '
                f'and NMS are outside it). Export it with tools/export.py.')
        shape, _ = input_size(cfg)
        channels = input_channels(cfg)
        batch = _timing_batch(cfg, batch_size, shape, channels, speed_only)
        files = _export_graphs(config, ckpt_file, work, cfg_options,
                               unsafe_load)
        if speed_only:
            calib_batches = [image_like(batch.shape, seed=s).numpy()
                             for s in (1, 2)]
        else:
            calib_batches = calibration_batches(cfg, 'train', calib, 16, 0,
                                                progress)
        models = output.int8_graphs(names, files, calib_batches, work)
        graph = InferenceGraph.of(model)
        graphs = {n: graph for n in names if n.startswith('torch')}
        if train_model is not None:
            names = [BASELINE] + names
            graphs[BASELINE] = InferenceGraph.of(train_model)
        rows: List[dict] = []
        built = _build(names, graphs, models, batch, threads, rows)
        baseline = BASELINE if BASELINE in built else FP32_SERVING
        reference, split, control = None, None, None
        if not speed_only:
            reference, split = _evaluate(cfg, model, built, rows, None,
                                         progress)
            plain = next((r for r in rows if r['name'] == 'openvino-int8'),
                         None)
            if plain and plain.get('drop') is not None and \
                    plain['drop'] > max_drop:
                candidates.append('openvino-int8-ac')
                control = output.accuracy_controlled(
                    cfg, model, files['onnx'], calib_batches, work, max_drop)
                models['openvino-int8-ac'] = control['path']
                extra = _build(['openvino-int8-ac'], {}, models, batch,
                               threads, rows)
                built.update(extra)
                if extra:
                    _evaluate(cfg, model, {FP32_SERVING: built[FP32_SERVING],
                                           **extra}, rows, reference,
                              progress)
        layers = layers_of(graph, torch.from_numpy(batch[:1]))
        macs = sum(layer.macs for layer in layers)
        stack_shape = dominant_shape(layers)
        precisions = sorted({r['precision'] for r in rows if not
                             r.get('error')}, key=['fp32', 'bf16',
                                                   'int8'].index)
        stack = ceiling_entries(stack_shape, batch_size, precisions, work,
                                threads)
        seconds = time_servings(built, batch, stack, rounds, min_time,
                                progress)
        found = speed_figures(rows, seconds, batch_size, macs, baseline,
                              stack)
        choice = select(rows, max_drop, candidates)
        report = dict(
            tool='tools/deploy.py',
            command=command or shlex.join(['python'] + sys.argv),
            started=started.isoformat(timespec='seconds'), config=config,
            checkpoint=checkpoint, task=task, speed_only=speed_only,
            metric_name=(None if speed_only else 'mIoU' if task ==
                         'segmentor' else 'accuracy/top1'),
            eval_split=split, max_drop=max_drop, reference_metric=reference,
            baseline=baseline, batch_size=batch_size,
            input_shape=list(batch.shape), rounds=rounds, min_time=min_time,
            calibration=dict(split=None if speed_only else 'train',
                             images=sum(len(b) for b in calib_batches)),
            macs_per_image=macs, ceiling_shape=list(stack_shape),
            ceilings=found, servings=rows, accuracy_control=control and
            dict(layers=control['layers'],
                 plain_layers=control['plain_layers']),
            host=dict(cpu=cpu_name(), cpu_features=cpu_features(),
                      threads=threads, versions=output.versions(),
                      load_avg_start=load_start and [round(x, 2) for x in
                                                     load_start],
                      load_avg_end=[round(x, 2) for x in os.getloadavg()]
                      if load_start else None),
            graph_metadata=output.graph_metadata(files['onnx']),
            **choice)
        report['seconds'] = round(time.perf_counter() - start, 1)
        output.write_out_dir(out_dir, report, models, files)
    return report
