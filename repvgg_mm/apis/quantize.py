"""Post-training INT8 of a checkpoint (``tools/quantize.py``), calibrated on
real images of the config's dataset."""
import os
import os.path as osp
import tempfile
from typing import Optional

import torch
from mmengine.utils import Timer

from ..converters.config_model import build_model
from ..converters.deploy_form import deploy_config
from ..engine.config_checks import check_repvgg_archs
from ..errors import ConfigError, positive_int
from ..io.atomic import atomic_write_json
from ..io.output_guard import Output, guard_outputs
from ..io.weights import load_weights, read_weights
from ..runtime.evaluate import (build_evaluator, build_split_dataset,
                                calibration_batches, evaluate_sessions,
                                evaluation_key, loader_key, packer, top1)
from ..runtime.quantize import check_settings, quantize_graph
from ..runtime.session import open_session
from ..utils.config import load_config
from ..utils.verify import check_finite_weights
from .export import export_model


def load_deploy_model(cfg, checkpoint: str, unsafe_load: bool = False):
    """``cfg``'s model in deploy form, eval, ``checkpoint`` loaded strictly."""
    model = build_model(deploy_config(cfg)).eval()
    load_weights(model, checkpoint, unsafe=unsafe_load)
    return model


def quantize_model(config: str, checkpoint: str, out: str,
                   backend: str = 'openvino', calib: int = 300,
                   split: str = 'train', method: Optional[str] = None,
                   evaluate: bool = False, cfg_options: Optional[dict] = None,
                   per_channel: bool = True, calib_batch: int = 16,
                   seed: int = 0, unsafe_load: bool = False,
                   progress: bool = True,
                   json_out: Optional[str] = None) -> dict:
    """INT8 model of ``checkpoint`` (training or deploy form) at ``out``
    (``.xml`` + ``.bin`` for ``backend='openvino'``, ``.onnx`` for
    ``'onnxruntime'``), calibrated on ``calib`` seeded random images of
    ``split`` (through the evaluation pipeline) with ``method`` (None: the
    backend's default); ``per_channel=False``: one weight scale per tensor.
    ``evaluate``: the config's evaluator on the fp32 and INT8 graphs over
    the val split; ``json_out``: also write the result there. Everything
    is checked before any work; nothing is written on failure.

    Returns:
        dict: ``int8_path``, the settings and ``seconds``; with ``evaluate``
        also ``metrics`` (``{'fp32': {...}, 'int8': {...}}``), ``top1_fp32``
        / ``top1_int8`` (top-1 %, or mIoU), ``agreement`` (share of
        identical predictions, 0-1) and ``output_sqnr_db``.
    """
    method = check_settings(backend, method, out)
    sidecars = (osp.splitext(out)[0] + '.bin', ) if out.endswith('.xml') \
        else ()
    outputs = [Output(out, 'OUT', sidecars)]
    if json_out is not None:
        if not json_out.endswith('.json'):
            raise ConfigError(f'`json_out` "{json_out}" must end with .json.')
        outputs.append(Output(json_out, '`json_out`'))
    guard_outputs(outputs, {'CHECKPOINT': checkpoint, 'CONFIG': config})
    positive_int(calib, '`calib`')
    cfg = load_config(config, cfg_options)
    check_repvgg_archs(cfg)
    loader_key(cfg, split)
    key = evaluate and evaluation_key(cfg)
    # readable, and finite (the INT8 scales of NaN / Inf are meaningless)
    check_finite_weights(read_weights(checkpoint, unsafe_load)[1], checkpoint)
    model = load_deploy_model(cfg, checkpoint, unsafe_load)
    if evaluate:  # a task and an evaluator to evaluate, and images
        packer(model)
        build_evaluator(cfg)
        if len(build_split_dataset(cfg, key.split('_')[0])) == 0:
            raise ConfigError(f'the {key.split("_")[0]} split ({key}) has '
                              f'no images, so `evaluate=True` has nothing to '
                              f'evaluate. Prepare the dataset, or drop '
                              f'`evaluate=True`.')
    timer = Timer()
    batches = calibration_batches(cfg, split, calib, calib_batch, seed,
                                  progress)
    seconds = dict(read_calibration=timer.since_last_check())
    result = dict(int8_path=out, backend=backend, method=method,
                  split=split, per_channel_weights=per_channel,
                  num_calibration_images=sum(len(b) for b in batches))
    with tempfile.TemporaryDirectory(prefix='repvgg-quant-') as work:
        fp32 = os.path.join(work, 'fp32.onnx')
        export_model(config, checkpoint, fp32, fmt='onnx', batch=1,
                     dynamic=True, cfg_options=cfg_options,
                     unsafe_load=unsafe_load)
        seconds['export'] = timer.since_last_check()
        quantize_graph(backend, fp32, batches, out, method, per_channel,
                       progress)
        seconds['quantize'] = timer.since_last_check()
        if evaluate:
            sessions = {form: open_session(path, backend, threads=torch.
                                           get_num_threads()).scores
                        for form, path in (('fp32', fp32), ('int8', out))}
            evaluation = evaluate_sessions(cfg, model, sessions, progress)
            seconds['evaluate'] = timer.since_last_check()
            metrics = evaluation['metrics']
            result.update(
                metric=('accuracy/top1' if 'accuracy/top1' in metrics['fp32']
                        else 'mIoU' if 'mIoU' in metrics['fp32'] else None),
                metrics=metrics, top1_fp32=top1(metrics['fp32']),
                top1_int8=top1(metrics['int8']),
                agreement=evaluation['agreement']['int8'],
                output_sqnr_db=evaluation['output_sqnr_db']['int8'],
                num_val_images=evaluation['num_images'],
                eval_split=evaluation['split'])
    result['seconds'] = {k: round(v, 2) for k, v in seconds.items()}
    if json_out is not None:
        try:
            atomic_write_json(result, json_out)
        except BaseException:  # both outputs or none
            for path in (out, ) + sidecars:
                if osp.isfile(path):
                    os.remove(path)
            raise
    return result
