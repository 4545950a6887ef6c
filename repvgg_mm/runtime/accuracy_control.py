"""INT8 that keeps the accuracy: NNCF's accuracy-controlled quantization
with the config's own evaluator as its validation function.

:func:`nncf.quantize_with_accuracy_control` quantizes the OpenVINO model
(calibrated on the train split), measures the drop of the metric on the
val split, and returns the layers that cost most back to float until the
drop is within ``max_drop`` (absolute, in the metric's own unit: top-1 and
mIoU are in %). :func:`float_layers` counts what stayed in float.
"""
import os
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ..io.atomic import atomic_files
from .calibration import evaluation_batches, graph_inputs
from .evaluate import build_evaluator, packer, top1

#: the layers NNCF quantizes (weights and input activations)
COMPUTE_OPS = ('Convolution', 'GroupConvolution', 'MatMul')


def float_layers(model) -> Dict[str, int]:
    """``dict(int8=..., float=...)``: convs / matmuls of an OpenVINO model
    whose input comes through a FakeQuantize (run in INT8) or not."""
    counts = dict(int8=0, float=0)
    for op in model.get_ordered_ops():
        if op.get_type_name() in COMPUTE_OPS:
            source = op.input_value(0).get_node().get_type_name()
            counts['int8' if source == 'FakeQuantize' else 'float'] += 1
    return counts


def validation_function(cfg, model, dataset_meta=None):
    """``fn(compiled_model, batches) -> headline metric`` by the config's
    evaluator (what NNCF calls after each change)."""
    pack = packer(model)

    def validate(compiled, batches) -> float:
        evaluator = build_evaluator(cfg)
        evaluator.dataset_meta = dataset_meta
        num = 0
        for batch in batches:
            inputs = graph_inputs(batch['inputs'])
            scores = torch.from_numpy(np.asarray(compiled(inputs)[0]))
            evaluator.process(data_samples=pack(scores,
                                                batch['data_samples']),
                              data_batch=batch)
            num += len(inputs)
        metric = top1(evaluator.evaluate(num))
        return float('nan') if metric is None else metric

    return validate


def quantize_with_accuracy_control(cfg, model, model_path: str,
                                   batches: Sequence[np.ndarray], out: str,
                                   max_drop: float,
                                   plain_path: Optional[str] = None) -> dict:
    """INT8 of ``model_path`` (fp32 ``.onnx`` / ``.xml``) within
    ``max_drop`` of its metric on the val split; writes ``out`` (``.xml`` +
    ``.bin``) atomically. Returns ``dict(path, layers=dict(int8, float),
    plain_layers=...)`` (``plain_layers``: the same count of the plain INT8
    model at ``plain_path``, if given).
    """
    import nncf
    import openvino as ov
    from mmengine.logging import print_log
    _, loader = evaluation_batches(cfg)
    validate = validation_function(
        cfg, model, getattr(loader.dataset, 'metainfo', None))
    print_log(f'NNCF accuracy control: max drop {max_drop:g} points on '
              f'{len(loader.dataset)} val images', logger='current')
    quantized = nncf.quantize_with_accuracy_control(
        ov.Core().read_model(model_path),
        calibration_dataset=nncf.Dataset(list(batches)),
        # validation_fn gets the raw batches, NNCF's ranker the graph input
        validation_dataset=nncf.Dataset(
            list(loader), lambda batch: graph_inputs(batch['inputs'])),
        validation_fn=validate, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(batches))
    stem = os.path.splitext(out)[0]
    with atomic_files([stem + '.bin', out]) as (_, tmp_xml):
        ov.save_model(quantized, tmp_xml, compress_to_fp16=False)
    plain = float_layers(ov.Core().read_model(plain_path)) if plain_path \
        else None
    return dict(path=out, layers=float_layers(quantized), plain_layers=plain)
