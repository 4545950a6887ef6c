"""Exporting a trained mmpretrain / mmseg (/ mmdet) model, fused, to ONNX or
OpenVINO IR (``tools/export.py``); nothing is written on any failure."""
import os.path as osp
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.utils import Timer

from ..converters.config_model import build_model, input_channels, input_size
from ..converters.deploy_form import deploy_config
from ..deploy import count_repvgg_blocks, switch_to_deploy
from ..engine.config_checks import check_repvgg_archs
from ..errors import ConfigError, check_shape, positive_int
from ..io.atomic import atomic_files, atomic_output
from ..io.output_guard import guard_output
from ..io.weights import load_state_dict_strict, read_weights, repvgg_form
from ..runtime.graph import (InferenceGraph, class_names, graph_metadata,
                             preprocessing_of)
from ..runtime.onnx_export import check_opset, export_onnx, save_openvino
from ..runtime.session import open_session
from ..utils.config import load_config
from ..utils.verify import (REL_TOL, check_finite_weights, flatten_outputs,
                            forward_tensor, verify_outputs)

FORMATS = {'.onnx': 'onnx', '.xml': 'openvino'}


class Export(NamedTuple):
    paths: Tuple[str, ...]  #: ``.onnx``, or ``.xml`` and ``.bin``
    format: str
    task: str
    input_shape: Tuple[int, int, int, int]  #: of the example (N, C, H, W)
    dynamic: bool
    num_fused_blocks: int
    max_abs_err: Optional[float]  #: with ``verify``, else None
    max_rel_err: Optional[float]
    seconds: float


def load_model(cfg, state_dict, checkpoint: str):
    """The config's model in ``state_dict``'s form, loaded strictly, eval."""
    form = repvgg_form(state_dict)
    if form == 'mixed':
        raise ConfigError(f'"{checkpoint}" holds both fused and training-form '
                          f'RepVGG blocks; it was not written by this '
                          f'project\'s tools.')
    model = build_model(deploy_config(cfg) if form == 'deploy' else cfg)
    load_state_dict_strict(model, state_dict, checkpoint)
    return model.eval()


def fuse(model) -> int:
    """Fuse ``model`` in place: its RepVGG blocks (returns their number),
    else the modules of other re-parameterizable backbones (returns 0)."""
    fused = count_repvgg_blocks(model, deployed=False)
    if fused:
        switch_to_deploy(model, inplace=True)
        return fused
    for module in model.modules():
        if callable(getattr(module, 'switch_to_deploy', None)) and (
                not getattr(module, 'deploy', True)):
            module.switch_to_deploy()
    return 0


def image_like(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A real-looking float32 batch in 0-255: smooth random colour fields
    (upsampled coarse noise) plus fine noise."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    coarse = torch.rand(n, c, max(h // 8, 2), max(w // 8, 2), generator=gen)
    smooth = F.interpolate(coarse, size=(h, w), mode='bilinear',
                           align_corners=False)
    noise = torch.rand(n, c, h, w, generator=gen) * 0.1
    return ((smooth * 0.9 + noise) * 255).clamp(0, 255)


@torch.no_grad()
def reference_outputs(model, images: torch.Tensor):
    """What mm's own code predicts (the model's data preprocessor, then
    ``mode='tensor'``; mmseg: ``encode_decode`` with whole-image test)."""
    data = model.data_preprocessor(dict(inputs=list(images)), False)
    inputs = data['inputs']
    if hasattr(model, 'encode_decode'):
        metas = [dict(img_shape=tuple(images.shape[2:]),
                      ori_shape=tuple(images.shape[2:]))] * len(images)
        return model.encode_decode(inputs, metas)
    return forward_tensor(model, inputs)


def _verify(path: str, model, images: torch.Tensor):
    session = open_session(path)  # the backend from the suffix
    got = [torch.from_numpy(o) for o in session(images.numpy())]
    return verify_outputs(
        flatten_outputs(reference_outputs(model, images)), got, REL_TOL,
        session.output_names, ('the PyTorch deploy form',
                               f'the exported model ({session.backend})'))


def export_model(config: str, checkpoint: str, out: str,
                 fmt: Optional[str] = None,
                 shape: Optional[Sequence[int]] = None, batch: int = 1,
                 dynamic: bool = False, opset: int = 17, verify: bool = False,
                 cfg_options: Optional[dict] = None,
                 unsafe_load: bool = False) -> Export:
    """Export ``checkpoint`` of ``config`` to ``out`` (``.onnx`` or
    ``.xml``), the example input ``batch`` x ``shape`` (H W; default: the
    config's); ``dynamic`` leaves N, H, W free; ``verify`` runs the file in
    its runtime against the PyTorch deploy form (``REL_TOL``)."""
    timer = Timer()
    suffix = osp.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise ConfigError(f'OUT "{out}" must end in .onnx (ONNX) or .xml '
                          f'(OpenVINO IR, written with its .bin).')
    if fmt not in (None, FORMATS[suffix]):
        raise ConfigError(f'format "{fmt}" does not match OUT "{out}" (a '
                          f'{suffix} file is {FORMATS[suffix]}).')
    fmt = FORMATS[suffix]
    paths = (out, ) if fmt == 'onnx' else (out, osp.splitext(out)[0] + '.bin')
    guard_output(out, 'OUT', {'CHECKPOINT': checkpoint, 'CONFIG': config},
                 paths[1:])
    check_opset(opset)
    check_shape(shape)
    positive_int(batch, '`batch`')
    cfg = load_config(config, cfg_options)
    check_repvgg_archs(cfg)
    (height, width), where = ((tuple(shape), '`shape`') if shape
                              else input_size(cfg))
    print_log(f'loading {checkpoint} ...', logger='current')
    loaded, state_dict = read_weights(checkpoint, unsafe_load)
    check_finite_weights(state_dict, checkpoint)
    model = load_model(cfg, state_dict, checkpoint)
    fused = fuse(model)
    prep = preprocessing_of(model)
    channels = len(prep.mean) if prep.mean else input_channels(cfg)
    graph = InferenceGraph(model, prep, channels).eval()
    images = image_like((batch, channels, height, width))
    try:
        with torch.no_grad():
            outputs = flatten_outputs(graph(images))
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [''])[0][:300]
        raise ConfigError(
            f'the model cannot take a {height}x{width} input (size from '
            f'{where}): {first}. Give a larger `shape` (H W).') from None
    num_classes = outputs[0].shape[1] if graph.task in (
        'classifier', 'segmentor') else None
    metadata = graph_metadata(cfg, config, graph.task, (height, width),
                              channels, prep, dynamic,
                              class_names(cfg, loaded, num_classes))
    names = graph.output_names(len(outputs))
    print_log(f'exporting the {graph.task} ({fused} RepVGG blocks fused) to '
              f'{fmt}, input {tuple(images.shape)}'
              f'{" (dynamic N, H, W)" if dynamic else ""} ...',
              logger='current')
    if fmt == 'onnx':
        with atomic_output(out) as tmp:
            export_onnx(graph, images, tmp, names, opset, dynamic, metadata)
            errors = _verify(tmp, model, images) if verify else (None, None)
    else:
        # the temporary .onnx goes with atomic_files' temporary folder
        with atomic_files([paths[1], paths[0]]) as (_, tmp):
            tmp_onnx = osp.splitext(tmp)[0] + '.onnx'
            export_onnx(graph, images, tmp_onnx, names, opset, dynamic)
            save_openvino(tmp_onnx, tmp, metadata)
            errors = _verify(tmp, model, images) if verify else (None, None)
    return Export(paths, fmt, graph.task, tuple(images.shape), dynamic, fused,
                  errors[0], errors[1], timer.since_start())
