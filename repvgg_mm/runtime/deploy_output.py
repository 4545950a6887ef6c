"""The deploy job's output folder: checked before any work, written all or
nothing at the end (the chosen model, ``report.json`` and whatever the
caller's ``documents`` add: ``tools/deploy.py`` adds a Markdown report, a
model card and a plot)."""
import json
import os
import os.path as osp
import platform
import shutil
from typing import Callable, Dict, Optional

import torch

from ..errors import ConfigError
from ..io.atomic import atomic_directory, atomic_write_json
from ..io.output_guard import guard_output

TOOL = 'tools/deploy.py'


def check_out_dir(out_dir: str, inputs: Dict[str, str]) -> None:
    """``out_dir`` can be written: new, empty, or an earlier output of this
    tool not holding an input. Nothing is created."""
    guard_output(out_dir, 'OUT_DIR', inputs, folder=True)
    path = osp.abspath(out_dir)
    for given in inputs.values():
        if osp.abspath(given).startswith(path + os.sep):
            raise ConfigError(f'OUT_DIR "{out_dir}" holds the input '
                              f'"{given}"; choose another folder.')
    if osp.isdir(path) and os.listdir(path):
        try:
            with open(osp.join(path, 'report.json')) as f:
                tool = json.load(f).get('tool')
        except (OSError, ValueError, AttributeError):
            tool = None
        if tool != TOOL:
            raise ConfigError(
                f'OUT_DIR "{out_dir}" is a non-empty folder that was not '
                f'written by {TOOL}; choose a new or empty folder '
                f'(nothing was written).')


def versions() -> Dict[str, str]:
    """The versions the figures were measured with."""
    out = dict(python=platform.python_version(), torch=torch.__version__,
               platform=platform.platform())
    for name in ('onnxruntime', 'openvino', 'nncf', 'mmengine',
                 'mmpretrain', 'mmseg'):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # not installed: not part of this run
            pass
    return out


def write_out_dir(out_dir: str, report: dict, models: Dict[str, str],
                  fp32_graph: str,
                  documents: Optional[Callable[[dict, str], None]] = None
                  ) -> None:
    """The chosen model as ``model.*`` (a torch serving: the fp32 graph),
    ``report.json`` and ``documents(report, folder)``'s files, all or
    nothing."""
    with atomic_directory(out_dir) as tmp:
        chosen = report['chosen']
        report['shipped'] = []
        if chosen:
            model = models.get(chosen, fp32_graph)
            stem, suffix = osp.splitext(model)
            pairs = [(model, 'model' + suffix)] + (
                [(stem + '.bin', 'model.bin')] if suffix == '.xml' else [])
            for source, name in pairs:
                shutil.copyfile(source, osp.join(tmp, name))
                report['shipped'].append(name)
        atomic_write_json(report, osp.join(tmp, 'report.json'))
        if documents is not None:
            documents(report, tmp)
