"""The main job on real handwritten digits, on CPU, in minutes.

:func:`run_digits_demo` is a sequence of the project's ordinary runs -- the
same public functions ``tools/train.py``, ``tools/test.py`` and
``tools/benchmark_fps.py`` call -- on the scikit-learn digits:

0. write the digits as an image folder (if missing);
1. train the multi-branch model (:func:`repvgg_mm.apis.train.train`); the
   config's ``SwitchToDeployHook`` validates the converted form during
   training and writes the deploy checkpoint and config at the end;
2. test the training form and 3. the deploy form (deploy config + deploy
   checkpoint) with :func:`repvgg_mm.apis.test.test`, both dumping their
   predictions;
4. compare the two sets of predictions (top-1 classes, class scores);
5. export the deploy form to ONNX (:func:`repvgg_mm.apis.export_model`)
   and run the held-out images through ONNX Runtime (the graph holds the
   preprocessing): top-1 and predictions that differ from PyTorch's;
6. quantize the deploy form to INT8 (:func:`repvgg_mm.apis.quantize_model`,
   OpenVINO + NNCF, calibrated on training images) and evaluate it on the
   held-out images against its fp32 graph;
7. time the torch forms, ONNX Runtime and the INT8 model in alternating
   rounds (:mod:`repvgg_mm.benchmark.rounds`);
8. write ``report.json`` and print a summary.
"""
import os
import os.path as osp
import pickle
import shlex
import sys
import time
from typing import Dict, Optional

import torch
from mmengine.logging import print_log

from repvgg_mm.apis.export import export_model
from repvgg_mm.apis.quantize import quantize_model
from repvgg_mm.apis.test import test, test_config
from repvgg_mm.apis.train import train, training_config
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.converters.deploy_checkpoint import deploy_checkpoint_path
from repvgg_mm.deploy import count_repvgg_blocks
from repvgg_mm.errors import ConfigError
from repvgg_mm.io.atomic import atomic_write_json
from repvgg_mm.io.weights import load_weights
from repvgg_mm.runtime.calibration import calibration_batches
from repvgg_mm.runtime.evaluate import evaluate_sessions
from repvgg_mm.runtime.graph import InferenceGraph
from repvgg_mm.runtime.quantize import inference_session
from repvgg_mm.runtime.session import open_session
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.verify import relative_errors

from ..benchmark.complexity import count_params
from ..benchmark.rounds import Entry, run_rounds
from ..benchmark.run import host_record
from ..benchmark.stats import summary
from .digits_dataset import ensure_digits_dataset

DEFAULT_CONFIG = 'configs/demo/repvgg-tiny_digits.py'
NUM_STEPS = 8
#: INT8 backend of the main job (installed by tools/setup_env.sh)
INT8_BACKEND = 'openvino'
HOOK = 'SwitchToDeployHook'

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
    'max_score_abs_diff': float,
    'max_score_rel_diff': float,
    'num_blocks_fused': int,
    'params_train_form': int,
    'params_deploy_form': int,
    'timing_batch_size': int,
    'timing_rounds': int,
    'torch_threads': int,
    'cpu_load_1min': float,
    'host': dict,
    'images_per_s_train_form': float,
    'images_per_s_deploy_form': float,
    'deploy_speedup': float,
    'top1_onnxruntime': float,
    'onnxruntime_differing_predictions': int,
    'images_per_s_onnxruntime': float,
    'onnx_model': str,
    'int8_backend': str,
    'int8_calibration_images': int,
    'top1_int8': float,
    'top1_int8_reference_fp32': float,
    'int8_agreement': float,
    'images_per_s_int8': float,
    'int8_speedup_vs_train_form': float,
    'int8_model': str,
    'seconds': dict,
    'checkpoint': str,
    'deploy_checkpoint': str,
    'deploy_config': str,
}


class PredictionMismatchError(ConfigError):
    """The converted model does not predict what the trained one does."""


# ----------------------------------------------------------------------
# config helpers
def set_max_epochs(cfg, epochs: int) -> None:
    """Train for ``epochs`` epochs; epoch-based schedulers that ended with
    the old last epoch end with the new one."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f'--epochs must be a positive whole number, got '
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
                raise ConfigError(
                    f'--epochs {epochs} is shorter than the '
                    f'{scheduler["type"]} phase that starts at epoch '
                    f'{scheduler["begin"]}; use more epochs.')


def data_root_options(data_root: str) -> Dict[str, str]:
    """``--cfg-options`` that point every dataloader at ``data_root``."""
    return {f'{loader}.dataset.data_root': data_root
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')}


def _check_hook(cfg, config: str) -> None:
    if not any(h.get('type') == HOOK for h in cfg.get('custom_hooks') or []):
        raise ConfigError(
            f'the demo needs custom_hooks=[dict(type="{HOOK}")] in '
            f'"{config}": the hook writes the deploy checkpoint and config '
            f'that the demo tests.')


def _step(i: int, text: str) -> None:
    print_log(f'[demo] step {i}/{NUM_STEPS}: {text}', logger='current')


# ----------------------------------------------------------------------
# predictions and speed
def load_predictions(path: str) -> Dict[str, torch.Tensor]:
    """Class scores and ground truth of a ``tools/test.py --out`` dump."""
    with open(path, 'rb') as f:
        samples = pickle.load(f)
    return dict(scores=torch.stack([s['pred_score'] for s in samples]),
                labels=torch.cat([s['gt_label'] for s in samples]))


def compare_predictions(reference: torch.Tensor,
                        converted: torch.Tensor) -> dict:
    """Differing top-1 classes and score differences of two forms."""
    (abs_diff, rel_diff), = relative_errors(reference, converted)
    differing = int((reference.argmax(1) != converted.argmax(1)).sum())
    return dict(num_differing_predictions=differing,
                max_score_abs_diff=abs_diff, max_score_rel_diff=rel_diff)


@torch.no_grad()
def first_inputs(model, cfg, num_images: int) -> torch.Tensor:
    """The first ``num_images`` preprocessed images of the test split."""
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(cfg.test_dataloader)
    chunks, count = [], 0
    for batch in loader:
        inputs = model.data_preprocessor(batch, False)['inputs']
        chunks.append(inputs)
        count += len(inputs)
        if count >= num_images:
            break
    return torch.cat(chunks)[:num_images]


def images_per_second(forwards: dict, batch_size: int,
                      rounds: int) -> Dict[str, float]:
    """Median images/s of each zero-argument forward over alternating
    rounds (each runs one batch of ``batch_size`` images)."""
    entries = [Entry(name, forward, batch_size)
               for name, forward in forwards.items()]
    seconds = run_rounds(entries, rounds, warmup=1, iters=5, device='cpu',
                         verbose=False)
    return {name: summary([batch_size / s for s in values])['median']
            for name, values in seconds.items()}


# ----------------------------------------------------------------------
# the whole job
def run_digits_demo(config: str = DEFAULT_CONFIG,
                    work_dir: str = 'work_dirs/digits_demo',
                    data_root: str = 'data/digits',
                    epochs: Optional[int] = None,
                    cfg_options: Optional[dict] = None,
                    timing_batch: int = 128,
                    timing_rounds: int = 5,
                    command: Optional[str] = None) -> dict:
    """Train -> test -> (convert) -> test -> compare -> time -> report.

    Writes ``work_dir/report.json``; returns the report.

    Raises:
        PredictionMismatchError: the two forms disagree on any image.
    """
    start = time.perf_counter()
    seconds = {}
    options = dict(cfg_options or {}, **data_root_options(data_root))
    # settings first (nothing is written for bad ones), then the data,
    # then the config with its dataset paths checked
    checked = load_config(config, options)
    if epochs is not None:
        set_max_epochs(checked, epochs)
    _check_hook(checked, config)

    _step(0, f'digits dataset at {data_root}')
    clock = time.perf_counter()
    ensure_digits_dataset(data_root)
    seconds['dataset'] = time.perf_counter() - clock
    cfg = training_config(config, cfg_options=options, work_dir=work_dir)
    if epochs is not None:
        set_max_epochs(cfg, epochs)

    _step(1, f'training the multi-branch model for '
          f'{cfg.train_cfg.max_epochs} epochs (work dir {work_dir}); '
          f'{HOOK} validates the converted form and writes it at the end')
    clock = time.perf_counter()
    checkpoint = train(cfg)
    seconds['train'] = time.perf_counter() - clock
    if checkpoint is None:
        raise ConfigError(f'training wrote no checkpoint to {work_dir}; the '
                          f'demo needs default_hooks.checkpoint enabled.')
    name = osp.splitext(osp.basename(cfg.filename))[0]
    deploy_ckpt = deploy_checkpoint_path(checkpoint)
    deploy_cfg_path = osp.join(work_dir, f'{name}_deploy.py')

    _step(2, f'testing the training form ({checkpoint})')
    clock = time.perf_counter()
    train_out = osp.join(work_dir, 'predictions_train_form.pkl')
    tcfg = test_config(config, checkpoint, cfg_options=options,
                       work_dir=osp.join(work_dir, 'test_train_form'),
                       out=train_out)
    for hook in tcfg.get('custom_hooks') or []:
        if hook.get('type') == HOOK:  # test this form as it is
            hook['convert_test'] = False
    top1_train = float(test(tcfg, checkpoint)['accuracy/top1'])
    seconds['test_train_form'] = time.perf_counter() - clock

    _step(3, f'testing the deploy form ({deploy_cfg_path}, {deploy_ckpt})')
    clock = time.perf_counter()
    deploy_out = osp.join(work_dir, 'predictions_deploy_form.pkl')
    dcfg = test_config(deploy_cfg_path, deploy_ckpt,
                       work_dir=osp.join(work_dir, 'test_deploy_form'),
                       out=deploy_out)
    top1_deploy = float(test(dcfg, deploy_ckpt)['accuracy/top1'])
    seconds['test_deploy_form'] = time.perf_counter() - clock

    _step(4, 'comparing the predictions of the two forms')
    trained = load_predictions(train_out)
    deployed = load_predictions(deploy_out)
    if not torch.equal(trained['labels'], deployed['labels']):
        raise ConfigError('the two test runs saw the images in different '
                          'orders; is the test sampler shuffling?')
    agreement = compare_predictions(trained['scores'], deployed['scores'])

    threads = torch.get_num_threads()
    _step(5, 'exporting the deploy form to ONNX and testing it in ONNX '
          'Runtime')
    clock = time.perf_counter()
    train_model = build_model(cfg).eval()
    load_weights(train_model, checkpoint)
    deploy_model = build_model(dcfg).eval()
    load_weights(deploy_model, deploy_ckpt)
    onnx_path = export_model(deploy_cfg_path, deploy_ckpt,
                             osp.join(work_dir, 'onnx', f'{name}.onnx'),
                             dynamic=True, verify=True).paths[0]
    ort_session = open_session(onnx_path, 'ort', threads=threads)
    graph = InferenceGraph.of(deploy_model)
    with torch.inference_mode():
        runtimes = evaluate_sessions(dcfg, deploy_model, dict(
            torch=lambda x: graph(torch.from_numpy(x)).numpy(),
            onnxruntime=lambda x: ort_session(x)[0]), progress=False)
    ort_differing = round(runtimes['num_images'] *
                          (1 - runtimes['agreement']['onnxruntime']))
    seconds['onnxruntime'] = time.perf_counter() - clock

    _step(6, f'quantizing the deploy form to INT8 ({INT8_BACKEND}, '
          f'calibrated on training images) and evaluating it')
    clock = time.perf_counter()
    int8 = quantize_model(deploy_cfg_path, deploy_ckpt,
                          osp.join(work_dir, 'int8', f'{name}_int8.xml'),
                          backend=INT8_BACKEND, evaluate=True,
                          progress=False)
    seconds['int8'] = time.perf_counter() - clock

    _step(7, f'timing the forms (batch {timing_batch}, {timing_rounds} '
          f'alternating rounds, {threads} thread{"s" * (threads > 1)})')
    clock = time.perf_counter()
    inputs = first_inputs(train_model, dcfg, timing_batch)
    raw = calibration_batches(dcfg, 'val', timing_batch, timing_batch,
                              progress=False)[0]  # the graph's own input
    int8_session = inference_session(int8['int8_path'], INT8_BACKEND)
    with torch.inference_mode():
        speed = images_per_second(
            dict(train_form=lambda: train_model(inputs, mode='tensor'),
                 deploy_form=lambda: deploy_model(inputs, mode='tensor'),
                 onnxruntime=lambda: ort_session(raw),
                 int8=lambda: int8_session(raw)), len(inputs),
            timing_rounds)
    seconds['timing'] = time.perf_counter() - clock
    # other programs' load changes the figures on a shared machine
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else -1.0

    _step(8, 'writing the report')
    seconds['total'] = time.perf_counter() - start
    report = dict(
        command=command or shlex.join(['python'] + sys.argv),
        config=config,
        data_root=data_root,
        work_dir=work_dir,
        epochs=int(cfg.train_cfg.max_epochs),
        num_train_images=_num_images(data_root, 'train'),
        num_val_images=len(trained['labels']),
        top1_train_form=top1_train,
        top1_deploy_form=top1_deploy,
        num_blocks_fused=count_repvgg_blocks(deploy_model, deployed=True),
        params_train_form=count_params(train_model),
        params_deploy_form=count_params(deploy_model),
        timing_batch_size=len(inputs),
        timing_rounds=timing_rounds,
        torch_threads=threads,
        cpu_load_1min=load,
        host=host_record(torch.device('cpu')),
        images_per_s_train_form=speed['train_form'],
        images_per_s_deploy_form=speed['deploy_form'],
        deploy_speedup=speed['deploy_form'] / speed['train_form'],
        top1_onnxruntime=float(
            runtimes['metrics']['onnxruntime']['accuracy/top1']),
        onnxruntime_differing_predictions=int(ort_differing),
        images_per_s_onnxruntime=speed['onnxruntime'],
        onnx_model=onnx_path,
        int8_backend=INT8_BACKEND,
        int8_calibration_images=int8['num_calibration_images'],
        top1_int8=float(int8['top1_int8']),
        top1_int8_reference_fp32=float(int8['top1_fp32']),
        int8_agreement=float(int8['agreement']),
        images_per_s_int8=speed['int8'],
        int8_speedup_vs_train_form=speed['int8'] / speed['train_form'],
        int8_model=int8['int8_path'],
        seconds={k: round(v, 2) for k, v in seconds.items()},
        checkpoint=checkpoint,
        deploy_checkpoint=deploy_ckpt,
        deploy_config=deploy_cfg_path,
        **agreement)
    atomic_write_json(report, osp.join(work_dir, 'report.json'))
    print_log('\n' + format_report(report), logger='current')
    if report['num_differing_predictions']:
        raise PredictionMismatchError(
            f'the deploy form predicts another class than the trained form '
            f'on {report["num_differing_predictions"]} of '
            f'{report["num_val_images"]} images (max score relative diff '
            f'{report["max_score_rel_diff"]:.2e}); the conversion is wrong. '
            f'Report it with {osp.join(work_dir, "report.json")}.')
    return report


def _num_images(data_root: str, split: str) -> int:
    from .digits_dataset import read_meta
    return int(read_meta(data_root)['num_images'][split])


def format_report(report: dict) -> str:
    """The short human-readable summary printed at the end of the demo."""
    threads = report['torch_threads']
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
        f'(max class-score rel diff {report["max_score_rel_diff"]:.2e})',
        f'  top-1 ONNX Runtime  {report["top1_onnxruntime"]:.2f} % '
        f'({report["onnxruntime_differing_predictions"]} predictions differ '
        f'from PyTorch)',
        f'  top-1 INT8          {report["top1_int8"]:.2f} % '
        f'({report["int8_backend"]}, {report["int8_calibration_images"]} '
        f'calibration images; fp32 graph '
        f'{report["top1_int8_reference_fp32"]:.2f} %'
        f', {100 * report["int8_agreement"]:.2f} % identical predictions)',
        f'  parameters          {report["params_train_form"]:,} -> '
        f'{report["params_deploy_form"]:,} ({report["num_blocks_fused"]} '
        f'blocks fused)',
        f'  images/s (batch {report["timing_batch_size"]}) '
        f'train form {report["images_per_s_train_form"]:.0f}, deploy form '
        f'{report["images_per_s_deploy_form"]:.0f} '
        f'(x{report["deploy_speedup"]:.2f}), ONNX Runtime '
        f'{report["images_per_s_onnxruntime"]:.0f}, INT8 '
        f'{report["images_per_s_int8"]:.0f} '
        f'(x{report["int8_speedup_vs_train_form"]:.2f}; {threads} '
        f'thread{"s" * (threads > 1)}, CPU load '
        f'{report["cpu_load_1min"]:.1f})',
        f'  wall time           {report["seconds"]["total"]:.1f} s',
        f'  report              {osp.join(report["work_dir"], "report.json")}',
        f'  deploy checkpoint   {report["deploy_checkpoint"]}',
        '=' * 64,
    ]
    return '\n'.join(lines)
