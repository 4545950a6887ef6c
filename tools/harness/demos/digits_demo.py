"""The main job on real handwritten digits, on CPU, in minutes.

:func:`run_digits_demo` is a sequence of the project's ordinary runs -- the
same public functions ``tools/train.py``, ``tools/test.py`` and
``tools/deploy.py`` call -- on the scikit-learn digits:

0. write the digits as an image folder (if missing);
1. train the multi-branch model (:func:`repvgg_mm.apis.train.train`); the
   config's ``SwitchToDeployHook`` validates the converted form during
   training and writes the deploy checkpoint and config at the end;
2. test the training form and 3. the deploy form (deploy config + deploy
   checkpoint) with :func:`repvgg_mm.apis.test.test`, both dumping their
   predictions;
4. compare the two sets of predictions (top-1 classes, class scores);
5. ``tools/deploy.py``'s job on the trained checkpoint
   (:func:`repvgg_mm.apis.deploy_model`): export, every serving (torch,
   ONNX Runtime fp32 / INT8, OpenVINO fp32 / bf16 / INT8, INT8 calibrated
   on training images), each evaluated on the held-out images and timed in
   alternating rounds; the fastest within ``max_drop`` points is written
   to ``work_dir/deploy``;
6. write ``report.json`` and print a summary and the deploy table.
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

from repvgg_mm.apis.deploy import deploy_model
from repvgg_mm.apis.test import test, test_config
from repvgg_mm.apis.train import train, training_config
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.converters.deploy_form import deploy_checkpoint_path
from repvgg_mm.deploy import count_repvgg_blocks
from repvgg_mm.errors import ConfigError
from repvgg_mm.io.atomic import atomic_write_json
from repvgg_mm.io.weights import load_weights
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.verify import relative_errors

from ..benchmark.complexity import count_params
from ..deploy_report import format_table, write_documents
from .digits_dataset import ensure_digits_dataset
# REPORT_TYPES: what report.json holds (imported from here by the tests)
from .digits_report import REPORT_TYPES, format_report  # noqa: F401

DEFAULT_CONFIG = 'configs/demo/repvgg-tiny_digits.py'
NUM_STEPS = 6
#: the INT8 serving whose figures the report lists
INT8_BACKEND = 'openvino'
HOOK = 'SwitchToDeployHook'


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


def _speed(rows: Dict[str, dict], name: str) -> float:
    """Median images/s of a serving of the deploy job."""
    return float(rows[name]['images_per_s']['median'])


def _differing(row: dict, num_images: int) -> int:
    """Predictions of a serving that differ from the fp32 torch model."""
    return int(round(num_images * (1 - row['agreement'])))


# ----------------------------------------------------------------------
# the whole job
def run_digits_demo(config: str = DEFAULT_CONFIG,
                    work_dir: str = 'work_dirs/digits_demo',
                    data_root: str = 'data/digits',
                    epochs: Optional[int] = None,
                    cfg_options: Optional[dict] = None,
                    timing_batch: int = 128,
                    timing_rounds: int = 3,
                    min_time: float = 1.0,
                    max_drop: float = 0.5,
                    command: Optional[str] = None) -> dict:
    """Train -> test -> (convert) -> test -> compare -> deploy -> report.

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
    _step(5, f'tools/deploy.py\'s job on the trained checkpoint: export, '
          f'every serving (torch, ONNX Runtime, OpenVINO fp32 / bf16 / '
          f'INT8), evaluated on the held-out images and timed (batch '
          f'{timing_batch}, {timing_rounds} alternating rounds, '
          f'{threads} thread{"s" * (threads > 1)}); the fastest within '
          f'{max_drop:g} points is chosen')
    clock = time.perf_counter()
    deploy_dir = osp.join(work_dir, 'deploy')
    shipping = deploy_model(
        config, checkpoint, deploy_dir, max_drop=max_drop,
        batch_size=timing_batch, rounds=timing_rounds, min_time=min_time,
        cfg_options=options, threads=threads, progress=False,
        command=command, documents=write_documents)
    seconds['deploy'] = time.perf_counter() - clock
    rows = {row['name']: row for row in shipping['servings']}
    deploy_model_ = build_model(dcfg).eval()
    load_weights(deploy_model_, deploy_ckpt)
    train_model = build_model(cfg).eval()
    load_weights(train_model, checkpoint)
    # other programs' load changes the figures on a shared machine
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else -1.0

    _step(6, 'writing the report')
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
        num_blocks_fused=count_repvgg_blocks(deploy_model_, deployed=True),
        params_train_form=count_params(train_model),
        params_deploy_form=count_params(deploy_model_),
        timing_batch_size=timing_batch,
        timing_rounds=timing_rounds,
        torch_threads=threads,
        cpu_load_1min=load,
        host=shipping['host'],
        images_per_s_train_form=_speed(rows, 'torch-train'),
        images_per_s_deploy_form=_speed(rows, 'torch'),
        deploy_speedup=_speed(rows, 'torch') / _speed(rows, 'torch-train'),
        top1_onnxruntime=float(rows['onnxruntime']['metric']),
        onnxruntime_differing_predictions=_differing(
            rows['onnxruntime'], len(trained['labels'])),
        images_per_s_onnxruntime=_speed(rows, 'onnxruntime'),
        int8_backend=INT8_BACKEND,
        int8_calibration_images=shipping['calibration']['images'],
        top1_int8=float(rows['openvino-int8']['metric']),
        top1_int8_reference_fp32=float(shipping['reference_metric']),
        int8_agreement=float(rows['openvino-int8']['agreement']),
        images_per_s_int8=_speed(rows, 'openvino-int8'),
        int8_speedup_vs_train_form=_speed(rows, 'openvino-int8') /
        _speed(rows, 'torch-train'),
        max_drop=float(max_drop),
        chosen_serving=shipping['chosen'] or '',
        chosen_drop=float(rows[shipping['chosen']]['drop'])
        if shipping['chosen'] else float('nan'),
        chosen_speedup_vs_train_form=float(rows[shipping['chosen']][
            'vs_baseline']['median']) if shipping['chosen'] else 0.0,
        deploy_dir=deploy_dir,
        deploy_table=format_table(shipping),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        checkpoint=checkpoint,
        deploy_checkpoint=deploy_ckpt,
        deploy_config=deploy_cfg_path,
        **agreement)
    atomic_write_json(report, osp.join(work_dir, 'report.json'))
    print_log('\n' + format_report(report), logger='current')
    print_log('\n' + report['deploy_table'], logger='current')
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
