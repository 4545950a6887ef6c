"""Parameters and MACs of RepVGG classifiers, and the paper's figures.

The classifier is mmpretrain's ``ImageClassifier`` (RepVGGMM backbone,
global average pooling, 1000-class linear head), built through the real
registry; MACs are counted by mmengine's analysis tools (``FlopAnalyzer``
counts one multiply-accumulate as one "flop").
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from .models.arch import stage_widths, parse_arch

#: paper Table 4/5 (deploy form, 224x224, 1000 classes): params (M), MACs (G)
PAPER_FIGURES: Dict[str, Tuple[float, float]] = {
    'a0': (8.30, 1.4), 'a1': (12.78, 2.4), 'a2': (25.49, 5.1),
    'b0': (14.33, 3.1), 'b1': (51.82, 11.8), 'b1g2': (41.36, 8.8),
    'b1g4': (36.12, 7.3), 'b2': (80.31, 18.4), 'b2g4': (55.77, 11.3),
    'b3': (110.96, 26.2), 'b3g4': (75.62, 16.1),
}
#: REFERENCE §3, "measured here with mmpretrain 1.2.0": params (M), MACs (G)
#: to two decimals (the paper rounds MACs to 0.1 G).
REFERENCE_MEASURED: Dict[str, Tuple[float, float]] = {
    'a0': (8.31, 1.36), 'a1': (12.79, 2.36), 'a2': (25.50, 5.12),
    'b0': (14.34, 3.06), 'b1': (51.83, 11.82), 'b1g2': (41.36, 8.81),
    'b1g4': (36.13, 7.31), 'b2': (80.32, 18.38), 'b2g4': (55.78, 11.33),
    'b3': (110.96, 26.21), 'b3g4': (75.63, 16.06), 'd2se': (120.39, 32.83),
}
#: REFERENCE §3: train-form (unconverted) params (M) measured there
REFERENCE_TRAIN_PARAMS: Dict[str, float] = {'a0': 9.11, 'b0': 15.82,
                                            'b1': 57.42}


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


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, shape=(3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass, by mmengine's FlopAnalyzer."""
    from mmengine.analysis import FlopAnalyzer
    model = model.eval()
    inputs = torch.zeros(1, *shape)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


def arch_figures(arch: str, shape=(3, 224, 224),
                 with_macs: bool = True) -> Dict[str, Optional[float]]:
    """Train/deploy params (M) and deploy MACs (G) of a classifier."""
    model = build_classifier(arch)
    train_params = count_params(model)
    from .deploy import switch_to_deploy
    switch_to_deploy(model, inplace=True)
    return dict(
        arch=arch,
        train_params_m=train_params / 1e6,
        deploy_params_m=count_params(model) / 1e6,
        deploy_macs_g=count_macs(model, shape) / 1e9 if with_macs else None)
