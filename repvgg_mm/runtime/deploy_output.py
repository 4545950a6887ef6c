"""The deploy job's files: its output folder (checked before any work,
written atomically at the end), the INT8 graphs it builds in its work
folder, and the record of versions and graph metadata."""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence

import numpy as np

from ..errors import ConfigError
from ..io.atomic import atomic_directory
from .deploy_report import format_markdown, format_model_card, plot

#: the files the tool writes; a folder holding only these may be replaced
REPORT_FILES = ('report.json', 'report.md', 'model_card.md',
                'speed_vs_accuracy.png')
#: INT8 serving -> (backend, file in the work folder)
INT8 = {'onnxruntime-int8': ('onnxruntime', 'model_int8.onnx'),
        'openvino-int8': ('openvino', 'model_int8.xml')}


def check_out_dir(out_dir: str, inputs: Sequence[str]) -> None:
    """``out_dir`` can be written: absent (its nearest existing parent
    writable), empty, or an earlier output of this tool. Nothing is
    created."""
    path = osp.abspath(out_dir)
    for given in inputs:
        if osp.abspath(given) == path or osp.abspath(given).startswith(
                path + os.sep):
            raise ConfigError(f'OUT_DIR "{out_dir}" holds the input '
                              f'"{given}"; choose another folder.')
    if osp.exists(path) and not osp.isdir(path):
        raise ConfigError(f'OUT_DIR "{out_dir}" exists and is not a folder; '
                          f'choose a folder name.')
    if osp.isdir(path) and os.listdir(path):
        record = osp.join(path, 'report.json')
        tool = None
        try:
            with open(record) as f:
                tool = json.load(f).get('tool')
        except (OSError, ValueError, AttributeError):
            pass
        if tool != 'tools/deploy.py':
            raise ConfigError(
                f'OUT_DIR "{out_dir}" is a non-empty folder that was not '
                f'written by tools/deploy.py; choose a new or empty folder '
                f'(nothing was written).')
    existing = osp.dirname(path)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f'cannot write OUT_DIR "{out_dir}": "{existing}" '
                          f'is not a writable folder (nothing was written).')


def int8_graphs(names: List[str], files: Dict[str, str],
                batches: Sequence[np.ndarray], work: str) -> Dict[str, str]:
    """The model file of every runtime serving in ``names``: the fp32
    graphs of ``files`` and the INT8 graphs quantized here."""
    from .quantize import quantize_graph
    from .servings import fp32_models
    models = fp32_models(files['onnx'], files['xml'])
    for name in names:
        if name in INT8:
            backend, filename = INT8[name]
            models[name] = quantize_graph(backend, files['onnx'], batches,
                                          osp.join(work, filename))
    return models


def accuracy_controlled(cfg, model, onnx_path: str,
                        batches: Sequence[np.ndarray], work: str,
                        max_drop: float) -> dict:
    """NNCF accuracy-controlled INT8 in ``work`` (compared with the plain
    INT8 model there)."""
    from .accuracy_control import quantize_with_accuracy_control
    return quantize_with_accuracy_control(
        cfg, model, onnx_path, batches,
        osp.join(work, 'model_int8_ac.xml'), max_drop,
        osp.join(work, INT8['openvino-int8'][1]))


def versions() -> Dict[str, str]:
    """The versions the figures were measured with."""
    import platform

    import torch
    out = dict(python=platform.python_version(), torch=torch.__version__,
               platform=platform.platform())
    for name in ('onnxruntime', 'openvino', 'nncf', 'mmengine',
                 'mmpretrain', 'mmseg'):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # not installed: not part of this run
            pass
    return out


def graph_metadata(onnx_path: str) -> Dict[str, str]:
    """The metadata written into the exported graph."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _ship(model: str, folder: str) -> List[str]:
    """Copy the chosen model (``.xml`` with its ``.bin``) as ``model.*``."""
    suffix = osp.splitext(model)[1]
    names = [f'model{suffix}']
    shutil.copyfile(model, osp.join(folder, names[0]))
    if suffix == '.xml':
        names.append('model.bin')
        shutil.copyfile(osp.splitext(model)[0] + '.bin',
                        osp.join(folder, names[1]))
    return names


def write_out_dir(out_dir: str, report: dict, models: Dict[str, str],
                  files: Dict[str, str]) -> None:
    """The chosen model, ``report.json``, ``report.md``, the plot and (when
    a serving met the bound) ``model_card.md``, all or nothing."""
    from ..io.atomic import atomic_write_json
    with atomic_directory(out_dir) as tmp:
        chosen = report['chosen']
        report['shipped'] = []
        if chosen:
            model = models.get(chosen, files['onnx'])  # torch: fp32 graph
            report['shipped'] = _ship(model, tmp)
        atomic_write_json(report, osp.join(tmp, 'report.json'))
        with open(osp.join(tmp, 'report.md'), 'w') as f:
            f.write(format_markdown(report))
        if chosen:
            with open(osp.join(tmp, 'model_card.md'), 'w') as f:
                f.write(format_model_card(report))
        plot(report, osp.join(tmp, 'speed_vs_accuracy.png'))
