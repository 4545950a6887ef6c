"""Parameters and MACs of every RepVGG classifier (paper Tables 4 and 5).

The classifier is mmpretrain's ``ImageClassifier`` (RepVGGMM backbone,
global average pooling, 1000-class linear head), built through the real
registry; MACs are counted by :func:`.complexity.complexity`. The paper's
own figures are in ``paper_results.json`` (:func:`.paper.paper_arch_figures`).
"""
from typing import Dict, Optional

import torch.nn as nn

from repvgg_mm.deploy import switch_to_deploy
from repvgg_mm.models.arch import parse_arch, stage_widths

from .complexity import complexity, count_params


def build_classifier(arch, deploy: bool = False, num_classes: int = 1000,
                     **backbone_kwargs) -> nn.Module:
    """An mmpretrain ImageClassifier with a RepVGGMM backbone."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    _, widths = stage_widths(parse_arch(arch))
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='RepVGGMM', arch=arch, deploy=deploy,
                      **backbone_kwargs),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=widths[-1],
                  loss=dict(type='CrossEntropyLoss')))
    return MODELS.build(cfg)


def arch_figures(arch: str, shape=(3, 224, 224),
                 with_macs: bool = True) -> Dict[str, Optional[float]]:
    """Train/deploy params (M) and deploy MACs (G) of a classifier."""
    model = build_classifier(arch)
    train_params = count_params(model)
    switch_to_deploy(model, inplace=True)
    return dict(
        arch=arch,
        train_params_m=train_params / 1e6,
        deploy_params_m=count_params(model) / 1e6,
        deploy_macs_g=(complexity(model, shape[1:]).macs / 1e9
                       if with_macs else None))


def arch_report(archs, with_macs: bool = True):
    """Yield one row per arch: :func:`arch_figures`, the paper's figures and
    the worst relative error between the converted and the training
    backbone (all four stage outputs, random BN statistics, eval mode, fp32,
    input 2x3x64x48)."""
    import torch

    from repvgg_mm.errors import ConfigError
    from repvgg_mm.models import ARCH_SETTINGS, RepVGGMM
    from repvgg_mm.utils.verify import worst_errors

    from ..fusion_check import conversion_errors
    from .paper import paper_arch_figures
    unknown = [a for a in archs if a.lower() not in ARCH_SETTINGS]
    if unknown:
        raise ConfigError(f'unknown arch(s) {unknown}; valid: '
                          f'{", ".join(ARCH_SETTINGS)}')
    paper = paper_arch_figures()
    torch.manual_seed(0)
    for arch in (a.lower() for a in archs):
        row = arch_figures(arch, with_macs=with_macs)
        errors = conversion_errors(
            RepVGGMM(arch, out_indices=(0, 1, 2, 3)),
            torch.randn(2, 3, 64, 48), seed=1)
        row['worst_rel_error'] = worst_errors(errors)[1]
        row['paper_params_m'], row['paper_macs_g'] = paper.get(
            arch, (None, None))
        yield row
