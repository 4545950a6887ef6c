"""One benchmark run: build, convert, prepare, time in rounds, summarise.

:func:`run_benchmark` is what ``tools/benchmark_fps.py`` calls; it returns
the JSON-ready record that :mod:`.report` prints.
"""
import datetime
import os
import platform
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch.utils._pytree import tree_map

from repvgg_mm.runtime.rounds import Entry, paired_ratios, run_rounds, summary
from repvgg_mm.utils.verify import relative_errors, worst_errors

from . import ceiling as yardstick
from . import protocol as protocols
from .complexity import complexity
from .forms import deployed_form, inplace_block_activations_
from .serving import Serving, ServingUnavailable, candidates, prepare
from .sources import (BenchModel, build_source, check_source, example_input,
                      load_weights)


def _log(message: str) -> None:
    print_log(message, logger='current')


class Options(NamedTuple):
    sources: Sequence[str]  #: the primary model first, then baselines
    checkpoint: Optional[str] = None  #: weights of the primary model
    batch_size: Optional[int] = None  #: None: the paper's, per task
    shape: Optional[Tuple[int, int]] = None
    warmup: int = 2
    iters: int = 5
    rounds: int = 3
    device: str = 'cpu'
    serving: Serving = Serving()  #: applied to both forms
    best: bool = False  #: also try every candidate serving when deployed
    candidates: Optional[Sequence[Serving]] = None  #: None: the default list
    cfg_options: Optional[dict] = None
    ceiling: bool = True  #: time the precision ceilings (CPU)
    unsafe_load: bool = False  #: full unpickling of a trusted checkpoint


def _key(name: str, form: str, serving: str) -> str:
    return f'{name} / {form} / {serving}'


def host_record(device: torch.device) -> dict:
    """Platform, versions, threads, CPU name and the CPU features that decide
    bf16 / INT8 speed, and the load average now."""
    info = dict(platform=platform.platform(), python=platform.python_version(),
                torch=torch.__version__, device=str(device),
                torch_threads=torch.get_num_threads(),
                cpu_count=os.cpu_count())
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    else:
        from repvgg_mm.utils.cpu import cpu_features, cpu_name
        info['cpu'] = cpu_name()
        info['cpu_features'] = cpu_features()
    if hasattr(os, 'getloadavg'):
        info['load_avg_start'] = [round(x, 2) for x in os.getloadavg()]
    return info


def _prepare_model(bench: BenchModel, opts: Options, device: torch.device):
    proto = protocols.resolve(bench.task, opts.batch_size, opts.shape)
    model = inplace_block_activations_(bench.model.to(device))
    bench = bench._replace(model=model)
    one = example_input(1, proto.shape, device, bench.channels)
    _log(f'[{bench.name}] converting to the deployed form ...')
    deployed = deployed_form(bench, one)
    _log(f'[{bench.name}] deployed form: {deployed.steps} (max relative '
         f'output error {deployed.max_rel_err:.1e})')
    train_cx = complexity(bench.model, proto.shape, bench.channels)
    deploy_cx = complexity(deployed.model, proto.shape, bench.channels)
    record = dict(
        name=bench.name, source=bench.source, checkpoint=bench.checkpoint,
        task=bench.task, batch_size=proto.batch_size, shape=list(proto.shape),
        params=dict(train=train_cx.params, deploy=deploy_cx.params),
        macs=dict(train=train_cx.macs, deploy=deploy_cx.macs),
        deploy_steps=deployed.steps, max_rel_err=deployed.max_rel_err,
        rows=[])
    _log(f'[{bench.name}] {bench.task}: batch {proto.batch_size}, '
         f'{proto.shape[0]}x{proto.shape[1]}; params '
         f'{train_cx.params / 1e6:.2f}M -> {deploy_cx.params / 1e6:.2f}M, '
         f'MACs {train_cx.macs / 1e9:.2f}G -> {deploy_cx.macs / 1e9:.2f}G')
    inputs = example_input(proto.batch_size, proto.shape, device,
                           bench.channels)
    with torch.no_grad():  # what every serving must reproduce (first image)
        expected = {'train': bench.model(inputs[:1]),
                    'deploy': deployed.model(inputs[:1])}
    plan = [('train', bench.model, opts.serving),
            ('deploy', deployed.model, opts.serving)]
    if opts.best:
        tried = opts.candidates or candidates(device, opts.serving)
        plan += [('deploy', deployed.model, s) for s in tried
                 if s != opts.serving]
    entries = []
    for form, model, serving in plan:
        row = dict(form=form, serving=serving.name, setup_s=None, error=None)
        try:
            forward, setup_s, output = prepare(model, inputs, serving)
            row['setup_s'] = round(setup_s, 2)
            row['output_rel_err'] = worst_errors(relative_errors(
                expected[form], _first_item(output)))[1]
            entries.append(Entry(_key(bench.name, form, serving.name), forward,
                                 proto.batch_size))
            _log(f'[{bench.name}] prepared {form}/{serving.name} '
                 f'({setup_s:.1f}s)')
        except ServingUnavailable as note:  # e.g. bf16 on a CPU without it
            row['skipped'] = str(note)
            _log(f'[{bench.name}] {note}')
        except Exception as exc:  # a serving this model/device cannot do
            last_line = (str(exc).strip().splitlines() or [''])[-1]
            if not last_line.startswith(type(exc).__name__):
                last_line = f'{type(exc).__name__}: {last_line}'
            row['error'] = last_line[:300]
            _log(f'[{bench.name}] {form}/{serving.name} unavailable: '
                 f'{row["error"]}')
        record['rows'].append(row)
    return record, entries, (deployed.model, one, proto.batch_size)


def _first_item(outputs):
    return tree_map(lambda t: t[:1].float() if torch.is_tensor(t) else t,
                    outputs)


def run_benchmark(opts: Options) -> dict:
    """Build, convert, prepare and time everything of ``opts``; progress
    goes to mmengine's current logger."""
    device = torch.device(opts.device)
    started = datetime.datetime.now(datetime.timezone.utc)
    host = host_record(device)
    for source in opts.sources:  # fail before minutes of work, not after
        check_source(source)
    models, entries, first = [], [], None
    for idx, source in enumerate(opts.sources):
        _log(f'building {source} ...')
        bench = build_source(source, opts.cfg_options)
        taken = {m['name'] for m in models}
        if bench.name in taken:  # the same config twice: keep keys unique
            bench = bench._replace(name=f'{bench.name}#{idx + 1}')
        if idx == 0 and opts.checkpoint:
            bench = load_weights(bench, opts.checkpoint, opts.unsafe_load)
        record, model_entries, deployed = _prepare_model(bench, opts,
                                                         device)
        first = first or deployed
        models.append(record)
        entries += model_entries
    with yardstick.work_dir() as work:
        stack = None
        if opts.ceiling and device.type == 'cpu':
            servings = [r['serving'] for m in models for r in m['rows']]
            stack = yardstick.ceiling_entries(first[0], first[1], first[2],
                                              servings, work)
            entries += stack[0]
        _log(f'timing {len(entries)} entries x {opts.rounds} rounds '
             f'({opts.warmup} warm-up + {opts.iters} timed calls each) ...')
        seconds = run_rounds(entries, opts.rounds, opts.warmup, opts.iters,
                             device)
    for record in models:
        _summarise_model(record, seconds)
    record = dict(models=models)
    ceiling = stack and yardstick.summarise(record, seconds, stack[2],
                                            stack[1])
    if hasattr(os, 'getloadavg'):
        host['load_avg_end'] = [round(x, 2) for x in os.getloadavg()]
    return dict(
        tool='tools/benchmark_fps.py', started=started.isoformat(
            timespec='seconds'), host=host,
        settings=dict(rounds=opts.rounds, warmup=opts.warmup, iters=opts.iters,
                      serving=opts.serving.name, best=opts.best,
                      fp32=opts.serving.amp is None),
        ceiling=ceiling, models=models, comparisons=_comparisons(models))


def _summarise_model(record: dict, seconds: Dict[str, List[float]]
                     ) -> None:
    batch = record['batch_size']
    rates = {}
    for row in record['rows']:
        key = _key(record['name'], row['form'], row['serving'])
        if key not in seconds:
            continue
        row['images_per_s'] = summary([batch / s for s in seconds[key]])
        row['ms_per_batch'] = summary([s * 1e3 for s in seconds[key]])
        rates[(row['form'], row['serving'])] = row['images_per_s']['values']
    train = next((r for r in record['rows'] if r['form'] == 'train'), None)
    train_rates = train and rates.get(('train', train['serving']))
    for row in record['rows']:
        mine = rates.get((row['form'], row['serving']))
        if mine is None:
            continue
        if train_rates:
            row['speedup_vs_train'] = paired_ratios(mine, train_rates)
    timed = [r for r in record['rows']
             if r['form'] == 'deploy' and 'images_per_s' in r]
    if timed:
        best = max(timed, key=lambda r: r['images_per_s']['median'])
        record['best'] = dict(serving=best['serving'],
                              images_per_s=best['images_per_s']['median'])


def _rates(record: dict, form: str, serving: str):
    for row in record['rows']:
        if (row['form'], row['serving']) == (form, serving) and (
                'images_per_s' in row):
            return row['images_per_s']['values']
    return None


def _comparisons(models: List[dict]) -> List[dict]:
    """Paired ratios the README asks for.

    For every model: deployed (default serving and best) vs its training
    form, and every other deployed serving (runtimes, bf16, INT8) vs the
    deployed default serving (torch fp32 eager unless configured). The
    first model vs every other one: deployed vs deployed with the same
    serving, and the first model's best vs the other's default serving.
    """
    out = []

    def add(kind, a, a_form, a_serving, b, b_form, b_serving):
        num, den = _rates(a, a_form, a_serving), _rates(b, b_form, b_serving)
        if num and den:
            out.append(dict(
                kind=kind, numerator=f'{a["name"]} {a_form}/{a_serving}',
                denominator=f'{b["name"]} {b_form}/{b_serving}',
                sides=[dict(model=a['name'], form=a_form, serving=a_serving),
                       dict(model=b['name'], form=b_form, serving=b_serving)],
                ratio=paired_ratios(num, den)))

    for m in models:
        default = m['rows'][0]['serving']
        add('deployed vs training form', m, 'deploy', default, m, 'train',
            default)
        if 'best' in m and m['best']['serving'] != default:
            add('best deployed vs training form', m, 'deploy',
                m['best']['serving'], m, 'train', default)
        for row in m['rows']:
            if row['form'] == 'deploy' and row['serving'] != default:
                add('serving vs default serving', m, 'deploy',
                    row['serving'], m, 'deploy', default)
    first = models[0]
    for other in models[1:]:
        for row in first['rows']:
            if row['form'] == 'deploy':
                add('same serving', first, 'deploy', row['serving'], other,
                    'deploy', row['serving'])
        if 'best' in first:
            default = other['rows'][0]['serving']
            if first['best']['serving'] != default:
                add('best vs default serving', first, 'deploy',
                    first['best']['serving'], other, 'deploy', default)
    return out
