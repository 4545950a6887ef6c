"""Training the model of any mmpretrain / mmseg / mmdet config
(``tools/train.py``): inputs checked, then ``Runner.train()``."""
import os
import os.path as osp
from typing import Optional

from mmengine.device import get_device
from mmengine.logging import print_log

from ..converters.config_model import build_model
from ..engine.atomic_writes import use_atomic_checkpoints
from ..engine.checkpoint_loader import check_load_from
from ..engine.config_checks import (check_dataset_paths, check_neck_channels,
                                    check_repvgg_archs)
from ..engine.distributed import build_runner, runner_teardown
from ..errors import ConfigError
from ..io.checkpoint import CheckpointError, full_unpickling_by_default
from ..io.output_guard import guard_output
from ..io.weights import layout_problems, read_weights
from ..utils.config import load_config
from ..utils.cpu import supports_bf16


def runner_config(config: str, cfg_options: Optional[dict] = None,
                  work_dir: Optional[str] = None, launcher: str = 'none'):
    """The loaded config with the options every runner job shares."""
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    guard_output(cfg.work_dir, '`work_dir`', folder=True)
    check_repvgg_archs(cfg)
    check_neck_channels(cfg)
    return cfg


def _has_amp_device() -> bool:
    """A device of mmengine's AmpOptimWrapper (its own assert)."""
    return get_device() in ('cuda', 'npu', 'mlu', 'musa')


def _use_amp(cfg) -> None:
    """``amp=True``: fp16 on an accelerator, bf16 autocast on a bf16 CPU."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper',
                       'CPUAmpOptimWrapper'):
        raise ConfigError(
            f'`amp=True` replaces optim_wrapper.type by a mixed-precision '
            f'wrapper, but the config uses "{wrapper}". Train with '
            f'`amp=False` and configure mixed precision in the config.')
    if _has_amp_device():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    if not supports_bf16():
        raise ConfigError(
            '`amp=True` found no GPU (NPU/MLU/MUSA), and this CPU has no '
            'native bf16 (AVX-512 BF16 or AMX), so mixed precision would '
            'only be slower. Train with `amp=False` (fp32) on this machine.')
    cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.optim_wrapper.pop('dtype', None)


def _make_resumable(cfg) -> None:
    """Atomic checkpoints and :class:`EpochSeedHook`, each logged once."""
    if use_atomic_checkpoints(cfg):
        print_log('training: checkpoints are saved atomically ("atomic_local" '
                  'backend), so a killed run leaves no truncated one.',
                  logger='current')
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'EpochSeedHook' for h in hooks):
        hooks.append(dict(type='EpochSeedHook'))
        print_log('training: custom_hooks += EpochSeedHook, so a resumed '
                  'run repeats the interrupted one exactly.', logger='current')
    cfg.custom_hooks = hooks


def training_config(config: str, cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, launcher: str = 'none',
                    resume: Optional[str] = None, amp: bool = False,
                    auto_scale_lr: bool = False, validate: bool = True,
                    unsafe_load: bool = False):
    """The config :func:`train_model` trains with, options applied and
    inputs checked. ``resume``: a checkpoint or ``'auto'`` (the work dir's
    latest). ``unsafe_load``: unpickle the resume checkpoint fully (trusted
    files only; pass it to :func:`train` too)."""
    cfg = runner_config(config, cfg_options, work_dir, launcher)
    if amp:
        _use_amp(cfg)
    _make_resumable(cfg)
    if resume is not None:
        if resume != 'auto' and not osp.isfile(resume):
            raise ConfigError(
                f'`resume="{resume}"` does not exist. Give an '
                f'epoch_N.pth/iter_N.pth of the work dir, or `resume="auto"` '
                f'to pick the latest one automatically.')
        cfg.resume = True
        cfg.load_from = None if resume == 'auto' else resume
    resume_from = (last_checkpoint(cfg.work_dir) if resume == 'auto' else
                   resume)
    if resume_from is not None:
        check_resume_checkpoint(cfg, resume_from, unsafe_load)
    elif cfg.get('load_from') and osp.isfile(cfg.load_from):
        check_load_from(cfg, cfg.load_from, unsafe_load)
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ConfigError(
                f'`auto_scale_lr=True` needs "auto_scale_lr = dict('
                f'base_batch_size=...)" in the config "{config}".')
        cfg.auto_scale_lr.enable = True
    if not validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    check_dataset_paths(cfg, ['train_dataloader'] + (
        ['val_dataloader'] if cfg.get('val_cfg') is not None else []))
    return cfg


def check_resume_checkpoint(cfg, path: str, unsafe_load: bool = False) -> None:
    """Check ``path``'s weights against the model on the meta device,
    before any Runner or work dir: mmengine's resume loads non-strictly."""
    _, state_dict = read_weights(path, unsafe_load)
    model = build_model(cfg, device='meta')
    problems = layout_problems(
        state_dict, {k: v.shape for k, v in model.state_dict().items()})
    if problems:
        raise CheckpointError(
            f'cannot resume from "{path}": its weights do not match the '
            f'model of the config ({"; ".join(problems)}). Resume with the '
            f'config the checkpoint was trained with.')


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's CheckpointHook saved last in ``work_dir``."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


def _run_training(cfg, unsafe_load: bool) -> None:
    """Train; the Runner lives in this frame only (runner_teardown)."""
    runner = build_runner(cfg)
    if unsafe_load:
        # mmengine reads the resume / load_from checkpoint with a plain
        # torch.load, which is weights-only since torch 2.6: unpickle fully
        # for that read only (not for init_cfg or any later load)
        runner.load_or_resume = full_unpickling_by_default()(
            runner.load_or_resume)
    runner.train()


def train(cfg, unsafe_load: bool = False) -> Optional[str]:
    """``Runner.train()`` on a :func:`training_config`; returns the last
    checkpoint. ``unsafe_load``: as for :func:`training_config`."""
    os.environ.setdefault('LOCAL_RANK', '0')
    with runner_teardown():
        _run_training(cfg, unsafe_load)
    return last_checkpoint(cfg.work_dir)


def train_model(config: str, unsafe_load: bool = False,
                **options) -> Optional[str]:
    """Train the model of ``config`` (``options``: :func:`training_config`)."""
    return train(training_config(config, unsafe_load=unsafe_load, **options),
                 unsafe_load)
