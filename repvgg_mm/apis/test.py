"""Evaluating a checkpoint (``tools/test.py``), loaded strictly (mmengine's
load is not) and checked on the meta device before any Runner or work dir."""
import logging
import os
import os.path as osp
import shutil
import warnings
from typing import Dict, Optional

from ..converters.config_model import build_model
from ..engine.config_checks import check_dataset_paths
from ..engine.distributed import build_runner, runner_teardown, unwrap_model
from ..errors import CheckpointError, ConfigError
from ..io.output_guard import guard_output
from ..io.weights import load_state_dict_strict, load_weights, read_weights
from .train import runner_config


def test_config(config: str, checkpoint: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none',
                out: Optional[str] = None, unsafe_load: bool = False):
    """The config :func:`test_model` evaluates with, inputs checked. ``out``:
    also dump the predictions to this ``.pkl`` file. ``unsafe_load``: unpickle
    the checkpoint fully (trusted files only; pass it to :func:`test` too)."""
    cfg = runner_config(config, cfg_options, work_dir, launcher)
    if not osp.exists(checkpoint):  # a folder, a device: the reader says
        raise ConfigError(
            f'checkpoint "{checkpoint}" does not exist. Give the .pth '
            f'written by training (work_dirs/<config>/epoch_N.pth) or '
            f'a converted one.')
    cfg.load_from = None  # loaded strictly by _evaluate
    if out is not None:
        if not out.endswith(('.pkl', '.pickle')):
            raise ConfigError(f'out="{out}" must end with .pkl or .pickle '
                              f'(the predictions are pickled).')
        guard_output(out, '`out`',
                     {'CHECKPOINT': checkpoint, 'CONFIG': config})
        evaluators = cfg.test_evaluator
        cfg.test_evaluator = (
            list(evaluators) if isinstance(evaluators, (list, tuple)) else
            [evaluators]) + [dict(type='AtomicDumpResults', out_file_path=out)]
    check_dataset_paths(cfg, ['test_dataloader'])
    # unreadable or not fitting: fail before any Runner (and work dir)
    check_checkpoint_fits(cfg, checkpoint, unsafe_load)
    return cfg


def check_checkpoint_fits(cfg, checkpoint: str,
                          unsafe_load: bool = False) -> None:
    """Load ``checkpoint`` strictly into the config's model on meta device."""
    _, state_dict = read_weights(checkpoint, unsafe_load)
    try:
        model = build_model(cfg, device='meta')
    except (NotImplementedError, RuntimeError):
        return  # a model that cannot be built on meta: checked after
    with warnings.catch_warnings():
        # copying into meta tensors is a no-op, which torch warns about
        warnings.simplefilter('ignore', UserWarning)
        load_state_dict_strict(model, state_dict, checkpoint)


def _remove_new_folders(runner, work_dir_existed: bool) -> None:
    """Remove the log dir (and new empty work dir) of a Runner never run."""
    for handler in list(logging.getLogger('mmengine').handlers):
        if isinstance(handler, logging.FileHandler) and \
                handler.baseFilename.startswith(osp.abspath(runner.log_dir)):
            handler.close()
    shutil.rmtree(runner.log_dir, ignore_errors=True)
    if not work_dir_existed and osp.isdir(runner.work_dir) and \
            not os.listdir(runner.work_dir):
        os.rmdir(runner.work_dir)


def _evaluate(cfg, checkpoint: str, unsafe_load: bool) -> Dict[str, float]:
    work_dir_existed = osp.isdir(cfg.work_dir)
    runner = build_runner(cfg)  # lives in this frame only
    try:
        # checked by test_config already; this guards a file that changed
        load_weights(unwrap_model(runner.model), checkpoint,
                     unsafe=unsafe_load)
    except CheckpointError:
        _remove_new_folders(runner, work_dir_existed)
        raise
    return dict(runner.test())


def test(cfg, checkpoint: str, unsafe_load: bool = False) -> Dict[str, float]:
    """``Runner.test()`` of a :func:`test_config` with ``checkpoint`` loaded
    strictly; returns the metrics. ``unsafe_load``: as for test_config."""
    os.environ.setdefault('LOCAL_RANK', '0')
    with runner_teardown():
        return _evaluate(cfg, checkpoint, unsafe_load)


def test_model(config: str, checkpoint: str, unsafe_load: bool = False,
               **options) -> Dict[str, float]:
    """Evaluate ``checkpoint`` with ``config`` (``options``: test_config)."""
    return test(test_config(config, checkpoint, unsafe_load=unsafe_load,
                            **options), checkpoint, unsafe_load)
