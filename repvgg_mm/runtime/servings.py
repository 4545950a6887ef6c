"""The ways the deploy job can serve a model: built, evaluated, timed with
the precision ceilings, and the fastest within the bound chosen. Each is
one callable on the exported graph's input (float32 NCHW, 0-255) returning
the first output: ``torch-train`` runs the training form (never shipped),
the other torch servings the deploy form, the rest the exported graph."""
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..errors import ConfigError
from ..utils.cpu import supports_bf16
from .ceiling import ceiling_entries, ceilings, dominant_shape, layers_of
from .evaluate import evaluate_sessions, top1
from .quantize import quantize_graph, quantize_with_accuracy_control
from .rounds import Entry, paired_ratios, ranges_overlap, run_rounds, summary
from .session import ALIASES, open_session

#: name -> (runtime, precision (of the ceiling it is compared with), model
#: file in the work folder: the fp32 graph or the INT8 one quantized there)
SERVINGS = {
    'torch-train': ('torch', 'fp32', None),
    'torch': ('torch', 'fp32', None),
    'torch-channels_last': ('torch', 'fp32', None),
    'torch-jit': ('torch', 'fp32', None),
    'onnxruntime': ('onnxruntime', 'fp32', 'model.onnx'),
    'openvino': ('openvino', 'fp32', 'model.xml'),
    'openvino-bf16': ('openvino', 'bf16', 'model.xml'),
    'onnxruntime-int8': ('onnxruntime', 'int8', 'model_int8.onnx'),
    'openvino-int8': ('openvino', 'int8', 'model_int8.xml'),
    'openvino-int8-ac': ('openvino', 'int8', 'model_int8_ac.xml'),
}
#: the speed baseline and the accuracy reference
BASELINE, FP32_SERVING = 'torch-train', 'torch'
#: what a user may list in ``servings`` (the candidates to ship)
SELECTABLE = tuple(n for n in SERVINGS if n not in (
    BASELINE, 'openvino-int8-ac'))
#: earlier spellings accepted in ``servings``
SERVING_ALIASES = dict(ALIASES, eager='torch')
#: slack for the drop comparison (metrics are sums of floats)
EPS = 1e-9


def check_servings(names: Optional[List[str]]) -> List[str]:
    """The candidates to ship: ``names`` checked, or all this CPU runs."""
    if names is None:
        return [n for n in SELECTABLE
                if n != 'openvino-bf16' or supports_bf16()]
    chosen = [SERVING_ALIASES.get(n, n) for n in names]
    for name in chosen:
        if name not in SELECTABLE:
            raise ConfigError(
                f'unknown serving "{name}"; use some of '
                f'{", ".join(SELECTABLE)} (torch-train, the training '
                f'form, is the speed baseline and always timed).')
        if name == 'openvino-bf16' and not supports_bf16():
            raise ConfigError(
                'openvino-bf16 needs a CPU with native bf16 (AVX-512 '
                'BF16 or AMX), which this one has not; leave it out.')
    return list(dict.fromkeys(chosen))


def quantize_models(names: List[str], work: str,
                    batches: Sequence[np.ndarray]) -> Dict[str, str]:
    """The model file of each runtime serving, INT8 ones quantized here."""
    models = {}
    for name in names:
        runtime, precision, filename = SERVINGS[name]
        if filename:
            models[name] = osp.join(work, filename)
        if precision == 'int8':
            quantize_graph(runtime, osp.join(work, 'model.onnx'), batches,
                           models[name])
    return models


def _torch_serving(name: str, graph: torch.nn.Module,
                   example: np.ndarray) -> Callable:
    model = copy.deepcopy(graph).eval()
    last = name in ('torch-channels_last', 'torch-jit')
    if last:
        model = model.to(memory_format=torch.channels_last)
    if name == 'torch-jit':
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.from_numpy(example),
                                     check_trace=False, strict=False)
            model = torch.jit.optimize_for_inference(
                torch.jit.freeze(traced.eval()))

    def run(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
        if last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = model(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).numpy()

    return run


def build_servings(names: List[str], graphs: dict, models: Dict[str, str],
                   batch: np.ndarray, threads: int,
                   rows: List[dict]) -> Dict[str, Callable]:
    """``name -> run(images)`` of each serving that runs here; a row per
    name is appended to ``rows``, with the ``error`` of one that fails."""
    built = {}
    for name in names:
        runtime, precision, _ = SERVINGS[name]
        row = dict(name=name, runtime=runtime, precision=precision)
        rows.append(row)
        try:
            if runtime == 'torch':
                run = _torch_serving(name, graphs[name], batch[:1])
            else:
                run = open_session(models[name], runtime, 'bf16' if (
                    precision == 'bf16') else 'fp32', threads).scores
                row['model'] = osp.basename(models[name])
            run(batch[:3])  # warm-up, and another batch size
            built[name] = run
        except Exception as exc:  # a serving this model cannot do here
            row['error'] = f'{type(exc).__name__}: ' + (
                str(exc).strip().splitlines() or [''])[0][:300]
            print_log(f'{name}: {row["error"]}', logger='current')
    return built


def _evaluate_rows(cfg, model, built: Dict[str, Callable], rows: List[dict],
                   reference: Optional[float], progress: bool):
    """Fill the metrics of the rows of ``built`` against the fp32 reference
    (None: measured here); return ``(reference, split)``."""
    sessions = {FP32_SERVING: built[FP32_SERVING], **built}
    result = evaluate_sessions(cfg, model, sessions, progress)
    metrics = result['metrics']
    if reference is None:
        reference = top1(metrics[FP32_SERVING])
    for row in rows:
        if row['name'] in metrics:
            row['metric'] = top1(metrics[row['name']])
            row['metrics'] = metrics[row['name']]
            row['drop'] = None if row['metric'] is None or reference is \
                None else reference - row['metric']
            row['agreement'] = result['agreement'].get(row['name'], 1.0)
            row['output_sqnr_db'] = result['output_sqnr_db'].get(row['name'])
    return reference, result['split']


def evaluate_servings(cfg, model, built: Dict[str, Callable],
                      rows: List[dict], models: Dict[str, str], work: str,
                      calib_batches: Sequence[np.ndarray], batch: np.ndarray,
                      threads: int, max_drop: float, progress: bool):
    """Evaluate every serving; when plain OpenVINO INT8 misses ``max_drop``,
    add ``openvino-int8-ac`` (NNCF accuracy control) to ``built`` / ``rows``.
    Returns ``(reference metric, split, accuracy control record or None)``."""
    reference, split = _evaluate_rows(cfg, model, built, rows, None, progress)
    plain = next((r for r in rows if r['name'] == 'openvino-int8'), None)
    if not plain or plain.get('drop') is None or plain['drop'] <= max_drop:
        return reference, split, None
    name = 'openvino-int8-ac'
    control = quantize_with_accuracy_control(
        cfg, model, osp.join(work, 'model.onnx'), calib_batches,
        osp.join(work, SERVINGS[name][2]), max_drop, models['openvino-int8'])
    models[name] = control['path']
    extra = build_servings([name], {}, models, batch, threads, rows)
    if extra:
        built.update(extra)
        _evaluate_rows(cfg, model, {FP32_SERVING: built[FP32_SERVING],
                                    **extra}, rows, reference, progress)
    return reference, split, control


def measure(rows: List[dict], built: Dict[str, Callable], graph,
            batch: np.ndarray, baseline: str, rounds: int, min_time: float,
            work: str, threads: int, progress: bool) -> dict:
    """Time the servings and the ceiling stacks of their precisions in the
    same rounds, filling the timed rows' speeds and ``pct_of_ceiling``;
    returns ``macs_per_image``, ``ceiling_shape`` and ``ceilings``."""
    layers = layers_of(graph, torch.from_numpy(batch[:1]))
    macs = sum(layer.macs for layer in layers)
    shape = dominant_shape(layers)
    precisions = sorted({r['precision'] for r in rows if not r.get('error')},
                        key=['fp32', 'bf16', 'int8'].index)
    stack = ceiling_entries(shape, len(batch), precisions, work, threads)
    entries = [Entry(name, (lambda r=run: r(batch)), len(batch))
               for name, run in built.items()]
    entries += [Entry(f'ceiling/{c.precision}', c.forward, len(batch))
                for c in stack]
    print_log(f'timing {len(entries)} entries x {rounds} rounds (at least '
              f'{min_time:g} s each per round, alternating)', logger='current')
    seconds = run_rounds(entries, rounds, warmup=1, iters=2, verbose=False,
                         min_time=min_time, progress=ProgressBar(
                             len(entries) * rounds) if progress else None)
    rates = {name: [len(batch) / s for s in seconds[name]] for name in built}
    timed = [row for row in rows if row['name'] in rates]
    for row in timed:
        mine = rates[row['name']]
        row['images_per_s'] = summary(mine)
        row['ms_per_batch'] = summary([1e3 * s for s in seconds[row['name']]])
        if baseline in rates:
            row['vs_baseline'] = paired_ratios(mine, rates[baseline])
        row['gmacs_per_s'] = summary([r * macs / 1e9 for r in mine])
    found = ceilings(
        {c.precision: [c.macs_per_call / s for s in seconds[
            f'ceiling/{c.precision}']] for c in stack},
        {row['name']: (row['precision'], [r * macs for r in rates[
            row['name']]]) for row in timed})
    for row in timed:
        if row['precision'] in found:
            row['pct_of_ceiling'] = 100 * row['images_per_s']['median'] * \
                macs / found[row['precision']]['macs_per_s']
    return dict(macs_per_image=macs, ceiling_shape=list(shape), ceilings=found)


def _within(row: dict, max_drop: Optional[float]) -> bool:
    return row.get('drop') is None or max_drop is None or (
        row['drop'] <= max_drop + EPS)


def select(rows: List[dict], max_drop: Optional[float],
           candidates: Sequence[str]) -> dict:
    """Mark each row with a ``status`` and a ``reason``; return
    ``dict(chosen, met, closest, tied)``. Only ``candidates`` may be
    chosen; ``max_drop`` None: no accuracy bound (speed only)."""
    timed = [r for r in rows if r.get('images_per_s') and
             r['name'] in candidates]
    chosen = max((r for r in timed if _within(r, max_drop)),
                 key=lambda r: r['images_per_s']['median'], default=None)
    tied = []
    for row in rows:
        if row['name'] not in candidates:
            row.update(status='baseline', reason='the training form: the '
                       'speed baseline' if row['name'] == BASELINE else
                       'the fp32 reference (not among the servings asked for)')
        elif row.get('error'):
            row.update(status='failed', reason=f'could not run: '
                       f'{row["error"]}')
        elif not row.get('images_per_s'):
            row.update(status='failed', reason='not timed')
        elif not _within(row, max_drop):
            row.update(status='rejected', reason=f'drop {row["drop"]:.2f} > '
                       f'{max_drop:g} points')
        elif row is chosen:
            row.update(status='chosen', reason='the fastest within the bound')
        elif ranges_overlap(row['images_per_s'], chosen['images_per_s']):
            tied.append(row['name'])
            row.update(status='tied', reason=f'tied with {chosen["name"]}: '
                       f'the round ranges overlap, the rounds cannot rank '
                       f'them')
        else:
            ratio = row['images_per_s']['median'] / \
                chosen['images_per_s']['median']
            row.update(status='slower', reason=f'slower: {ratio:.2f}x the '
                       f'speed of {chosen["name"]}')
    closest = None
    if chosen is None:
        best = min((r for r in timed if r.get('drop') is not None),
                   key=lambda r: (r['drop'], -r['images_per_s']['median']),
                   default=None)
        closest = best and best['name']
    elif tied:
        chosen['reason'] += (f' (tied with {", ".join(tied)}: the same speed '
                             f'within the rounds\' spread)')
    return dict(chosen=chosen and chosen['name'], met=chosen is not None,
                closest=closest, tied=tied)
