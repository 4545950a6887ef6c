"""The two forms of a model that the benchmark compares.

* training form: the model as built (multi-branch RepVGG blocks, BNs), in
  eval mode -- what the paper's Table 6 times as "unconverted"; in both
  forms the blocks' ReLUs run in place (:func:`inplace_block_activations_`);
* deployed form: what a user serves. RepVGG blocks are re-parameterized
  (:func:`repvgg_mm.switch_to_deploy`); models without them use their own
  conversion if they have one (mmpretrain's ``switch_to_deploy``, timm's
  ``reparameterize_model``); then every remaining conv+BN pair is folded
  by ``mmcv.cnn.fuse_conv_bn``, so baselines such as ResNet are compared
  fused too. mmcv pairs a BN with the conv registered just before it; the
  outputs of both forms are compared afterwards, so a model where that
  pairing is wrong is an error, never a silently different function.
"""
import copy
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.deploy import count_repvgg_blocks, switch_to_deploy
from repvgg_mm.models.repvgg_block import RepVGGBlock
from repvgg_mm.utils.verify import relative_errors, run_forms, worst_errors

from .sources import BenchModel

#: deployed vs training output, relative to the output's magnitude; fp32
#: re-parameterization is exact up to round-off (paper Sec. 3.3).
MAX_REL_ERR = 1e-3


def inplace_block_activations_(model: nn.Module) -> nn.Module:
    """Run the ReLU of every RepVGG block in place (both forms).

    Safe: a block's activation reads only the block's own intermediate
    (the branch sum, or the fused conv's output). Saves one allocation and
    memory pass per block; timm's RepVGG does the same.
    """
    for module in model.modules():
        if isinstance(module, RepVGGBlock) and isinstance(module.act,
                                                          nn.ReLU):
            module.act.inplace = True
    return model


class DeployedForm(NamedTuple):
    model: nn.Module
    steps: str  #: what was done, for the report
    max_rel_err: float  #: deployed vs training output on one image


def _outermost_with(model: nn.Module, method: str):
    """Modules having ``method``, skipping those inside another such one."""
    found = []
    for name, module in model.named_modules():
        if callable(getattr(module, method, None)) and not any(
                name.startswith(outer + '.') or outer == ''
                for outer, _ in found):
            found.append((name, module))
    return found


def fold_conv_bn(model: nn.Module) -> int:
    """Fold eval-mode BNs into the convs before them (in place, by
    ``mmcv.cnn.fuse_conv_bn``); returns how many BNs were folded."""
    from mmcv.cnn import fuse_conv_bn

    def num_norms():
        return sum(isinstance(m, _BatchNorm) for m in model.modules())

    before = num_norms()
    fuse_conv_bn(model)
    return before - num_norms()


@torch.no_grad()
def deployed_form(bench: BenchModel, example: torch.Tensor) -> DeployedForm:
    """Convert a copy of ``bench.model``; ``example``: one input batch.

    Raises:
        RuntimeError: the deployed model is not the same function (relative
            output error above :data:`MAX_REL_ERR`).
    """
    model = copy.deepcopy(bench.model).eval()
    steps = []
    num_blocks = count_repvgg_blocks(model, deployed=False)
    if count_repvgg_blocks(model):
        switch_to_deploy(model, inplace=True)
        steps.append(f'{num_blocks} RepVGG blocks re-parameterized '
                     f'(repvgg_mm.switch_to_deploy)')
    elif bench.own_deploy is not None:
        model = bench.own_deploy(model).eval()
        steps.append(f'{bench.own_deploy.__module__}.'
                     f'{bench.own_deploy.__name__}')
    else:
        for name, module in _outermost_with(model, 'switch_to_deploy'):
            module.switch_to_deploy()
            steps.append(f'{name or "model"}.switch_to_deploy() '
                         f'({type(module).__name__})')
    inplace_block_activations_(model)
    folded = fold_conv_bn(model)
    if folded:
        steps.append(f'{folded} conv+BN pairs folded')
    errors = relative_errors(*run_forms(bench.model, model, example))
    max_rel = worst_errors(errors)[1]  # NaN propagated
    if not max_rel <= MAX_REL_ERR:
        raise RuntimeError(
            f'the deployed form of {bench.name} ({"; ".join(steps)}) is not '
            f'the same function as its training form: relative output '
            f'error {max_rel:.2e} > {MAX_REL_ERR:g}. Please report this.')
    return DeployedForm(model.eval(), '; '.join(steps) or 'nothing to fuse',
                        max_rel)
