"""The end-to-end demo: train a RepVGG classifier, convert it, check it.

:func:`run_classification_demo` trains the multi-branch model of an
mmpretrain config with mmengine's ``Runner`` (CPU is fine), evaluates it on
the validation split, converts it with :func:`repvgg_mm.switch_to_deploy`,
evaluates the deploy form through the very same dataloader, data
preprocessor, head and metric, counts the images whose predicted class
differs between the two forms (must be 0), times both forms on the same
batch and writes a JSON report plus the deploy checkpoint.
``tools/demo_digits.py`` runs it on the scikit-learn digits.
"""
import os
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from ..deploy import count_repvgg_blocks, switch_to_deploy
from ..io.atomic import atomic_write_json
from ..io.checkpoint import atomic_save
from ..utils.cli import ToolError
from ..benchmark.rounds import time_forward

Log = Callable[[str], None]

#: keys of the JSON report and their types (the tests check them)
REPORT_TYPES = {
    'command': str,
    'config': str,
    'data_root': str,
    'work_dir': str,
    'epochs': int,
    'num_train_images': int,
    'num_val_images': int,
    'top1_train_form': float,
    'top1_deploy_form': float,
    'num_differing_predictions': int,
    'max_logit_abs_diff': float,
    'max_logit_rel_diff': float,
    'num_blocks_fused': int,
    'params_train_form': int,
    'params_deploy_form': int,
    'timing_batch_size': int,
    'timing_rounds': int,
    'torch_threads': int,
    'cpu_load_1min': float,
    'images_per_s_train_form': float,
    'images_per_s_deploy_form': float,
    'deploy_speedup': float,
    'seconds': dict,
    'deploy_checkpoint': str,
}
TIMING_FORMS = ('train_form', 'deploy_form')


class PredictionMismatchError(ToolError):
    """The converted model does not predict what the trained one does."""


# ----------------------------------------------------------------------
# config helpers
def set_max_epochs(cfg, epochs: int) -> None:
    """Train for ``epochs`` epochs; epoch-based schedulers that ended with
    the old last epoch end with the new one."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ToolError(f'--epochs must be a positive whole number, got '
                        f'{epochs!r}.')
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for scheduler in schedulers:
        if scheduler.get('by_epoch', True) and scheduler.get('end') == old:
            scheduler['end'] = epochs
            if scheduler.get('begin', 0) >= epochs:
                raise ToolError(
                    f'--epochs {epochs} is shorter than the '
                    f'{scheduler["type"]} phase that starts at epoch '
                    f'{scheduler["begin"]}; use more epochs.')


def set_data_root(cfg, data_root: str) -> None:
    """Point every dataloader of ``cfg`` at ``data_root``."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key]['dataset']['data_root'] = data_root


def unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------
# evaluation of one form
@torch.no_grad()
def evaluate_classifier(model: nn.Module, dataloader, evaluator) -> dict:
    """Validate an mmpretrain classifier; also return its logits.

    Same path as mmengine's ``ValLoop`` (data preprocessor, ``head.predict``,
    the config's metric), and the raw logits and labels of every image in
    dataloader order. Returns ``dict(metrics, logits, labels)``.
    """
    model.eval()
    logits, labels = [], []
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        feats = model.extract_feat(data['inputs'])
        logits.append(model.head(feats))
        samples = model.head.predict(feats, data['data_samples'])
        labels.append(torch.cat([s.gt_label for s in samples]))
        evaluator.process(data_samples=samples, data_batch=batch)
    metrics = evaluator.evaluate(len(dataloader.dataset))
    return dict(metrics=metrics, logits=torch.cat(logits),
                labels=torch.cat(labels))


def compare_predictions(reference: torch.Tensor,
                        converted: torch.Tensor) -> dict:
    """Differing top-1 classes and logit differences of two forms."""
    differing = int((reference.argmax(1) != converted.argmax(1)).sum())
    abs_diff = (reference.double() - converted.double()).abs().max().item()
    scale = reference.double().abs().max().item()
    return dict(num_differing_predictions=differing,
                max_logit_abs_diff=abs_diff,
                max_logit_rel_diff=abs_diff / scale if scale > 0 else abs_diff)


def top1_of(metrics: dict) -> float:
    for key, value in metrics.items():
        if key.endswith('top1'):
            return float(value)
    raise ToolError(f'the val_evaluator reports no top-1 accuracy (got '
                    f'{sorted(metrics)}); use dict(type="Accuracy", '
                    f'topk=(1, )).')


# ----------------------------------------------------------------------
# speed
@torch.no_grad()
def first_inputs(model: nn.Module, dataloader, num_images: int):
    """The first ``num_images`` preprocessed images of ``dataloader``."""
    chunks, count = [], 0
    for batch in dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        chunks.append(inputs)
        count += len(inputs)
        if count >= num_images:
            break
    return torch.cat(chunks)[:num_images]


def measure_images_per_second(models: Dict[str, nn.Module],
                              inputs: torch.Tensor, rounds: int = 5,
                              iters: int = 5) -> Dict[str, float]:
    """Images/s of each model on the same batch (``mode='tensor'``).

    The forms take turns, ``rounds`` times ``iters`` timed calls each, so a
    load change on a shared machine hits both alike; the median call time
    counts.
    """
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            model.eval()
            times[name] += time_forward(
                lambda m=model: m(inputs, mode='tensor'), inputs.device,
                warmup=1, iters=iters)
    return {name: len(inputs) / statistics.median(t)
            for name, t in times.items()}


# ----------------------------------------------------------------------
# the whole loop


def run_classification_demo(cfg,
                            work_dir: str,
                            config_path: str = '',
                            timing_batch: int = 128,
                            timing_rounds: int = 5,
                            command: Optional[str] = None,
                            start_time: Optional[float] = None,
                            seconds: Optional[Dict[str, float]] = None,
                            log: Log = print) -> dict:
    """Train -> evaluate -> convert -> evaluate -> time -> report.

    ``cfg`` is a loaded mmpretrain classification config whose backbone is
    ``RepVGGMM`` (dataset root and epochs already set). Writes
    ``work_dir/report.json`` and ``work_dir/<config name>_deploy.pth``.
    ``start_time`` (``time.perf_counter()``) starts the wall clock of the
    report; ``seconds`` holds durations of earlier phases to report.

    Raises:
        PredictionMismatchError: the two forms disagree on any image.
    """
    from mmengine.runner import Runner
    start_time = time.perf_counter() if start_time is None else start_time
    seconds = dict(seconds or {})
    name = os.path.splitext(os.path.basename(config_path))[0] or 'model'
    cfg.work_dir = work_dir
    num_steps = 6

    def step(i: int, text: str) -> None:
        log(f'[demo] step {i}/{num_steps}: {text}')

    step(1, f'training the multi-branch model for '
         f'{cfg.train_cfg.max_epochs} epochs (work dir {work_dir})')
    clock = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    runner.train()
    seconds['train'] = time.perf_counter() - clock
    model = unwrap(runner.model).eval()
    dataloader = runner.val_dataloader
    log(f'[demo] trained in {seconds["train"]:.1f} s')

    step(2, 'validating the trained (multi-branch) model')
    clock = time.perf_counter()
    trained = evaluate_classifier(model, dataloader,
                                  runner.build_evaluator(cfg.val_evaluator))
    top1_train = top1_of(trained['metrics'])
    log(f'[demo] train-form top-1: {top1_train:.2f} % on '
        f'{len(trained["labels"])} held-out images')

    step(3, 'converting to the deploy form (3x3 conv + ReLU per block)')
    deploy_model = switch_to_deploy(model).eval()
    fused = count_repvgg_blocks(deploy_model, deployed=True)
    log(f'[demo] fused {fused} blocks; parameters '
        f'{count_parameters(model):,} -> {count_parameters(deploy_model):,}')

    step(4, 'validating the deploy model through the same pipeline')
    deployed = evaluate_classifier(deploy_model, dataloader,
                                   runner.build_evaluator(cfg.val_evaluator))
    top1_deploy = top1_of(deployed['metrics'])
    agreement = compare_predictions(trained['logits'], deployed['logits'])
    seconds['evaluate_and_convert'] = time.perf_counter() - clock
    log(f'[demo] deploy-form top-1: {top1_deploy:.2f} %; predictions that '
        f'differ: {agreement["num_differing_predictions"]}; max logit '
        f'relative diff {agreement["max_logit_rel_diff"]:.2e}')

    threads = torch.get_num_threads()
    step(5, f'timing both forms (batch {timing_batch}, {timing_rounds} '
         f'alternating rounds, {threads} thread{"s" * (threads > 1)})')
    clock = time.perf_counter()
    inputs = first_inputs(model, dataloader, timing_batch)
    speed = measure_images_per_second(
        dict(train_form=model, deploy_form=deploy_model), inputs,
        rounds=timing_rounds)
    seconds['timing'] = time.perf_counter() - clock
    # other programs' load changes the figures on a shared machine
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else -1.0
    log(f'[demo] images/s: train form {speed["train_form"]:.0f}, deploy '
        f'form {speed["deploy_form"]:.0f}')

    step(6, 'saving the deploy checkpoint and the report')
    checkpoint = os.path.join(work_dir, f'{name}_deploy.pth')
    atomic_save(
        dict(state_dict=deploy_model.state_dict(),
             meta=dict(config=config_path, deploy=True,
                       classes=list(dataloader.dataset.metainfo['classes']),
                       top1=top1_deploy)), checkpoint)
    seconds['total'] = time.perf_counter() - start_time
    report = dict(
        command=command or shlex.join(['python'] + sys.argv),
        config=config_path,
        data_root=cfg.val_dataloader.dataset.data_root,
        work_dir=work_dir,
        epochs=int(cfg.train_cfg.max_epochs),
        num_train_images=len(runner.train_dataloader.dataset),
        num_val_images=len(trained['labels']),
        top1_train_form=top1_train,
        top1_deploy_form=top1_deploy,
        num_blocks_fused=fused,
        params_train_form=count_parameters(model),
        params_deploy_form=count_parameters(deploy_model),
        timing_batch_size=len(inputs),
        timing_rounds=timing_rounds,
        torch_threads=threads,
        cpu_load_1min=load,
        images_per_s_train_form=speed['train_form'],
        images_per_s_deploy_form=speed['deploy_form'],
        deploy_speedup=speed['deploy_form'] / speed['train_form'],
        seconds={k: round(v, 2) for k, v in seconds.items()},
        deploy_checkpoint=checkpoint,
        **agreement)
    atomic_write_json(report, os.path.join(work_dir, 'report.json'))
    log(format_report(report))
    if report['num_differing_predictions']:
        raise PredictionMismatchError(
            f'the deploy form predicts another class than the trained form '
            f'on {report["num_differing_predictions"]} of '
            f'{report["num_val_images"]} images (max logit relative diff '
            f'{report["max_logit_rel_diff"]:.2e}); the conversion is wrong. '
            f'Report it with {os.path.join(work_dir, "report.json")}.')
    return report


def format_report(report: dict) -> str:
    """The short human-readable summary printed at the end of the demo."""
    report_file = os.path.join(report['work_dir'], 'report.json')
    lines = [
        '=' * 64,
        f'RepVGG demo report ({report["config"]})',
        f'  data                {report["num_train_images"]} train / '
        f'{report["num_val_images"]} held-out images ({report["data_root"]})',
        f'  training            {report["epochs"]} epochs in '
        f'{report["seconds"]["train"]:.1f} s on CPU',
        f'  top-1 train form    {report["top1_train_form"]:.2f} %',
        f'  top-1 deploy form   {report["top1_deploy_form"]:.2f} %',
        f'  differing preds     {report["num_differing_predictions"]} '
        f'(max logit rel diff {report["max_logit_rel_diff"]:.2e})',
        f'  parameters          {report["params_train_form"]:,} -> '
        f'{report["params_deploy_form"]:,} ({report["num_blocks_fused"]} '
        f'blocks fused)',
        f'  images/s (batch {report["timing_batch_size"]}) '
        f'train form {report["images_per_s_train_form"]:.0f}, deploy form '
        f'{report["images_per_s_deploy_form"]:.0f} '
        f'(x{report["deploy_speedup"]:.2f}; {report["torch_threads"]} '
        f'thread{"s" * (report["torch_threads"] > 1)}, CPU load '
        f'{report["cpu_load_1min"]:.1f})',
        f'  wall time           {report["seconds"]["total"]:.1f} s',
        f'  report              {report_file}',
        f'  deploy checkpoint   {report["deploy_checkpoint"]}',
        '=' * 64,
    ]
    return '\n'.join(lines)
