"""Converting a trained checkpoint to its deploy form (``convert_deploy.py``):
the deploy checkpoint and its config (checked to build it), both or neither."""
import os
import os.path as osp
from typing import NamedTuple, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.utils import Timer

from ..converters.config_model import build_model, input_channels, input_size
from ..converters.deploy_form import (deploy_checkpoint, deploy_config,
                                      write_deploy_config)
from ..deploy import count_repvgg_blocks, switch_to_deploy
from ..engine.config_checks import check_neck_channels, check_repvgg_archs
from ..errors import ConfigError, check_shape
from ..io.atomic import make_folders, remove_folders
from ..io.checkpoint import atomic_save
from ..io.output_guard import Output, guard_outputs
from ..io.weights import load_state_dict_strict, read_weights, repvgg_form
from ..utils.config import load_config
from ..utils.verify import (REL_TOL, check_finite_weights, run_forms,
                            verify_outputs)

DEFAULT_REL_TOL = REL_TOL  # the one verify tolerance (utils.verify)


class Conversion(NamedTuple):
    """What :func:`convert_checkpoint` wrote and measured."""

    checkpoint: str
    config: str
    num_blocks: int
    max_abs_err: Optional[float]  #: with ``verify``, else None
    max_rel_err: Optional[float]
    seconds: float


def _check_arguments(config: str, checkpoint: str, out: str,
                     out_config: Optional[str], shape, tolerance) -> str:
    """The deploy config's path, once the arguments and both outputs are
    checked (a default ``OUT.py`` is OUT's sidecar: never another's file)."""
    if out_config is not None and not out_config.endswith('.py'):
        raise ConfigError(f'out_config "{out_config}" must end with .py (it '
                          f'is a Python config).')
    check_shape(shape)
    if not tolerance >= 0:  # NaN too
        raise ConfigError(f'tolerance must be >= 0, got {tolerance}')
    if out_config is None:
        out_config = osp.splitext(out)[0] + '.py'
        outputs = [Output(out, 'OUT', (out_config, ))]
    else:
        outputs = [Output(out, 'OUT'), Output(out_config, 'out_config')]
    guard_outputs(outputs, {'CHECKPOINT': checkpoint, 'CONFIG': config})
    return out_config


def _verify(model, converted, cfg, shape, tolerance):
    (height, width), where = ((tuple(shape), '`shape`')
                              if shape else input_size(cfg))
    size = (1, input_channels(cfg), height, width)
    print_log(f'verifying on a random input of shape {size} (size from '
              f'{where}) ...', logger='current')
    inputs = torch.randn(size, generator=torch.Generator().manual_seed(0))
    worst_abs, worst_rel = verify_outputs(
        *run_forms(model, converted, inputs), tolerance)
    print_log(f'max abs difference: {worst_abs:.3e}; relative to the largest '
              f'output: {worst_rel:.3e} (tolerance {tolerance:g})',
              logger='current')
    return worst_abs, worst_rel


def convert_checkpoint(config: str, checkpoint: str, out: str,
                       out_config: Optional[str] = None, verify: bool = False,
                       shape: Optional[Sequence[int]] = None,
                       tolerance: float = DEFAULT_REL_TOL,
                       unsafe_load: bool = False,
                       cfg_options: Optional[dict] = None) -> Conversion:
    """Write the deploy checkpoint ``out`` of ``checkpoint`` and its config
    (default ``out`` with ``.py``), or nothing. ``verify``: compare both forms
    on a random input of ``shape`` (H, W) within a relative ``tolerance``."""
    out_config = _check_arguments(config, checkpoint, out, out_config, shape,
                                  tolerance)
    cfg = load_config(config, cfg_options)
    check_repvgg_archs(cfg)
    check_neck_channels(cfg)
    timer = Timer()
    print_log(f'loading {checkpoint} ...', logger='current')
    loaded, state_dict = read_weights(checkpoint, unsafe_load)
    check_finite_weights(state_dict, checkpoint)
    print_log(f'building the model of {config} ...', logger='current')
    model = build_model(cfg)
    if count_repvgg_blocks(model) == 0:
        raise ConfigError(
            f'the model of {config} ({type(model).__name__}) holds no '
            f'RepVGG block, so there is nothing to convert. Use a config '
            f'whose backbone is type="RepVGGMM".')
    if repvgg_form(state_dict) == 'deploy':
        raise ConfigError(
            f'"{checkpoint}" is already in deploy form (its RepVGG blocks are '
            f'fused: *.branch_reparam.* keys), so there is nothing to convert '
            f'and nothing was written. Use it as it is with the deploy config '
            f'(`cfg_options=model.backbone.deploy=True`).')
    load_state_dict_strict(model, state_dict, checkpoint)
    # verify needs both forms; otherwise convert in place (no copy)
    converted = switch_to_deploy(model.eval(), inplace=not verify)
    num_blocks = count_repvgg_blocks(converted, deployed=True)
    print_log(f'converted {num_blocks} RepVGG blocks in '
              f'{timer.since_start():.1f} s (build, load, convert)',
              logger='current')
    built = build_model(deploy_config(cfg), device='meta').state_dict()
    if {k: v.shape for k, v in built.items()} != {
            k: v.shape for k, v in converted.state_dict().items()}:
        raise ConfigError('the deploy config does not build the converted '
                          'model (a RepVGG module outside a type="RepVGGMM" '
                          'dict?). Nothing was written.')
    errors = (_verify(model, converted, cfg, shape, tolerance) if verify else
              (None, None))
    # both files or neither (and no folder created for them)
    created = make_folders(osp.dirname(osp.abspath(out))) + make_folders(
        osp.dirname(osp.abspath(out_config)))
    written = []
    try:
        atomic_save(deploy_checkpoint(loaded, converted, checkpoint), out)
        written.append(out)  # never a checkpoint without its config
        write_deploy_config(cfg, out_config)
    except BaseException:
        for path in written:
            os.remove(path)
        remove_folders(created)
        raise
    return Conversion(out, out_config, num_blocks, *errors,
                      timer.since_start())
