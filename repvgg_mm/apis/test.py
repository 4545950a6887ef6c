"""Evaluating a checkpoint with any mmpretrain / mmseg / mmdet config.

:func:`test_model` is what ``tools/test.py`` (and ``tools/dist_test.sh``)
runs. The checkpoint is loaded strictly (:mod:`repvgg_mm.io.weights`):
mmengine's test path would load it non-strictly and could leave random
weights with only a warning. A training-form checkpoint loads into the
deploy config's model (fused while loading).
"""
import os
import os.path as osp
from typing import Dict, Optional

from ..engine.config_checks import check_dataset_paths
from ..engine.distributed import build_runner, runner_teardown, unwrap_model
from ..io.checkpoint import (CheckpointError, load_checkpoint_file,
                             state_dict_of)
from ..io.weights import load_state_dict_strict
from ..utils.cli import ToolError
from .train import runner_config


def test_config(config: str,
                checkpoint: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none',
                out: Optional[str] = None):
    """The config :func:`test_model` evaluates with, inputs checked.
    ``out``: also dump the predictions to this ``.pkl`` file."""
    cfg = runner_config(config, cfg_options, work_dir, launcher)
    if not osp.isfile(checkpoint):
        raise ToolError(
            f'checkpoint "{checkpoint}" does not exist. Give the .pth '
            f'written by tools/train.py (work_dirs/<config>/epoch_N.pth) or '
            f'a converted one.')
    load_checkpoint_file(checkpoint)  # unreadable: fail before any Runner
    cfg.load_from = None  # loaded strictly by _evaluate
    if out is not None:
        if not out.endswith(('.pkl', '.pickle')):
            raise ToolError(f'--out "{out}" must end with .pkl or .pickle '
                            f'(the predictions are pickled).')
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='DumpResults', out_file_path=out)
        ]
    check_dataset_paths(cfg, ['test_dataloader'])
    return cfg


def _remove_new_folders(log_dir: str, work_dir: str,
                        work_dir_existed: bool) -> None:
    """Remove what a Runner that never ran created: its log dir, and the
    work dir if it did not exist before and is empty now."""
    import logging
    import shutil
    for handler in list(logging.getLogger('mmengine').handlers):
        if isinstance(handler, logging.FileHandler) and \
                handler.baseFilename.startswith(osp.abspath(log_dir)):
            handler.close()
    shutil.rmtree(log_dir, ignore_errors=True)
    if not work_dir_existed and osp.isdir(work_dir) and \
            not os.listdir(work_dir):
        os.rmdir(work_dir)


def _evaluate(cfg, checkpoint: str) -> Dict[str, float]:
    work_dir_existed = osp.isdir(cfg.work_dir)
    loaded = load_checkpoint_file(checkpoint)
    runner = build_runner(cfg)  # lives in this frame only
    try:
        load_state_dict_strict(unwrap_model(runner.model),
                               state_dict_of(loaded), checkpoint)
    except CheckpointError:
        _remove_new_folders(runner.log_dir, runner.work_dir,
                            work_dir_existed)
        raise
    del loaded
    return dict(runner.test())


def test(cfg, checkpoint: str) -> Dict[str, float]:
    """``Runner.test()`` of a prepared config with ``checkpoint`` loaded
    strictly; returns the metrics."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    with runner_teardown():
        return _evaluate(cfg, checkpoint)


def test_model(config: str, checkpoint: str, **options) -> Dict[str, float]:
    """Evaluate ``checkpoint`` with ``config``; ``options`` as for
    :func:`test_config`. Returns the metrics."""
    return test(test_config(config, checkpoint, **options), checkpoint)
