"""``RepVGGMM``: the RepVGG backbone for mmpretrain, mmsegmentation & co."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..converters.pretrained import (after_backbone_load, before_backbone_load,
                                     load_init_cfg)
from ..errors import ConfigError
from .arch import layer_groups, parse_arch, stage_widths
from .repvgg_block import RepVGGBlock

NUM_STAGES = 4
#: block arguments that RepVGGMM sets itself (not allowed in ``block_cfg``)
BACKBONE_BLOCK_ARGS = ('in_channels', 'out_channels', 'stride', 'dilation',
                       'groups', 'se_ratio', 'norm_cfg', 'act_cfg', 'deploy',
                       'with_cp')


def _four(name: str, value) -> Tuple:
    if not isinstance(value, (list, tuple)) or len(value) != NUM_STAGES:
        raise ConfigError(f'{name} must have {NUM_STAGES} entries (one per '
                          f'post-stem stage), got {value!r}')
    return tuple(value)


def resolve_out_indices(out_indices) -> Tuple[int, ...]:
    """``out_indices`` (an int or a sequence, negatives allowed) as 0-3."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    resolved = []
    for index in out_indices:
        if not -NUM_STAGES <= index < NUM_STAGES:
            raise ConfigError(f'out_indices must be in [-{NUM_STAGES}, '
                              f'{NUM_STAGES - 1}], got {index}')
        resolved.append(index % NUM_STAGES)
    if not resolved:
        raise ConfigError('out_indices must name at least one stage')
    return tuple(resolved)


def out_channels_of(arch: Union[str, dict],
                    out_indices: Sequence[int] = (3, )) -> Tuple[int, ...]:
    """``RepVGGMM(arch, out_indices=...).out_channels``, without a model."""
    _, widths = stage_widths(parse_arch(arch))
    return tuple(widths[i] for i in resolve_out_indices(out_indices))


def check_norm_cfg(norm_cfg) -> None:
    """Refuse a norm layer that fusion cannot fold (not BatchNorm-family)."""
    kind = norm_cfg.get('type') if isinstance(norm_cfg, dict) else None
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if not isinstance(cls, type) or not issubclass(cls, _BatchNorm):
        raise ConfigError(
            f'RepVGGMM norm_cfg={norm_cfg!r}: RepVGG blocks are fused for '
            f'deployment by folding BatchNorm statistics into the convs, so '
            f'the norm layer must be of the BatchNorm family (BN, SyncBN); '
            f'{kind!r} cannot be fused. Use norm_cfg=dict(type="BN") (or '
            f'"SyncBN" for multi-GPU training).')


@MODELS.register_module()
class RepVGGMM(BaseModule):
    """RepVGG backbone ("RepVGG: Making VGG-style ConvNets Great Again"): a
    stem block (stride 2) and stages ``stage_1`` .. ``stage_4`` (paper stages
    2-5) of blocks; each stage's first block has the stage's stride.

    Args:
        arch: a name of :data:`ARCH_SETTINGS` (case-insensitive) or a dict
            (see :mod:`repvgg_mm.models.arch`).
        out_indices: the post-stem stages to return (0-3, or negative).
        strides, dilations: per stage, of its first block / its 3x3 convs.
        layer_dilations: per stage ``None`` or the dilations of its *last*
            layers, e.g. ``(None, None, [2]*4, [4])`` (PSPNet "-fast").
        frozen_stages: freeze the stem (0) and stages 1..n (n >= 1); -1 none.
        norm_eval: keep BN layers in eval mode while training.
        with_cp, deploy, norm_cfg, act_cfg: passed to every block.
        block_cfg: ``dict(type='RepVGGBlock')`` or ``'QARepVGGBlock'``, plus
            extra block arguments other than :data:`BACKBONE_BLOCK_ARGS`.
        init_cfg: mmengine init config (``Pretrained``: any layout).
    """

    #: mmengine's BaseModule property, which TorchScript cannot compile
    __jit_unused_properties__ = ['is_init']

    def __init__(self,
                 arch: Union[str, dict] = 'a0',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (3, ),
                 strides: Sequence[int] = (2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 layer_dilations: Optional[Sequence] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 deploy: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 block_cfg: dict = dict(type='RepVGGBlock'),
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1,
                          layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg=init_cfg)
        try:
            self.arch = parse_arch(arch)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f'RepVGGMM arch: {exc}') from None
        if not deploy:  # a deploy block has no norm layer
            check_norm_cfg(norm_cfg)
        self.strides = _four('strides', strides)
        self.dilations = _four('dilations', dilations)
        self.layer_dilations = self._resolve_layer_dilations(layer_dilations)
        self.out_indices = resolve_out_indices(out_indices)
        if isinstance(frozen_stages, bool) or not isinstance(
                frozen_stages, int) or not -1 <= frozen_stages <= NUM_STAGES:
            raise ConfigError(
                f'frozen_stages must be in [-1, {NUM_STAGES}] (-1: none, 0: '
                f'the stem, n: the stem and stages 1..n), got '
                f'{frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.deploy = deploy

        stem_width, widths = stage_widths(self.arch)
        self.block_cfg = self._resolve_block_cfg(block_cfg)
        shared = dict(se_ratio=self.arch['se_ratio'], norm_cfg=norm_cfg,
                      act_cfg=act_cfg, deploy=deploy, with_cp=with_cp)
        self.stem = self._build_block(in_channels, stem_width, stride=2,
                                      **shared)
        self.stage_names = [f'stage_{i + 1}' for i in range(NUM_STAGES)]
        channels, layer_idx = stem_width, 1
        for i, width in enumerate(widths):
            blocks = []
            for j, dilation in enumerate(self.layer_dilations[i]):
                groups = layer_groups(self.arch, layer_idx)
                if channels % groups or width % groups:
                    raise ConfigError(
                        f'arch["groups"]={groups} does not divide the '
                        f'channels ({channels} -> {width}) of layer '
                        f'{layer_idx} (stage {i})')
                blocks.append(self._build_block(
                    channels, width, stride=self.strides[i] if j == 0 else 1,
                    dilation=dilation, groups=groups, **shared))
                channels, layer_idx = width, layer_idx + 1
            self.add_module(self.stage_names[i], nn.Sequential(*blocks))
        self.out_channels = out_channels_of(self.arch, self.out_indices)
        self._freeze_stages()
        # every load: all backbone tensors or an error, and one log line
        self.register_load_state_dict_post_hook(after_backbone_load)

    @staticmethod
    def _resolve_block_cfg(block_cfg) -> dict:
        if not isinstance(block_cfg, dict) or 'type' not in block_cfg:
            raise ConfigError(
                f'block_cfg must be a dict with a "type", e.g. '
                f'dict(type="QARepVGGBlock"), got {block_cfg!r}')
        clash = sorted(set(block_cfg) & set(BACKBONE_BLOCK_ARGS))
        if clash:
            raise ConfigError(
                f'block_cfg must not set {clash}: the backbone sets them for '
                f'every block. Use the RepVGGMM arguments instead (arch, '
                f'strides, dilations, layer_dilations, norm_cfg, act_cfg, '
                f'deploy, with_cp).')
        cfg = dict(block_cfg)
        # this package's block names resolve in mmengine's root registry
        # whatever the scope: mmyolo's RepVGGBlock must not win
        if isinstance(cfg['type'], str) and cfg['type'] in MODELS.module_dict:
            cfg['type'] = MODELS.module_dict[cfg['type']]
        return cfg

    def _build_block(self, in_channels, out_channels, **kwargs):
        block = MODELS.build(dict(self.block_cfg, in_channels=in_channels,
                                  out_channels=out_channels, **kwargs))
        if not isinstance(block, RepVGGBlock):
            raise TypeError(
                f'block_cfg built a {type(block).__name__}, which is not a '
                f'RepVGGBlock subclass: fusion, switch_to_deploy and '
                f'checkpoint conversion need one. Use "RepVGGBlock" or '
                f'"QARepVGGBlock".')
        return block

    def _resolve_layer_dilations(self, layer_dilations):
        if layer_dilations is None:
            layer_dilations = (None, ) * NUM_STAGES
        layer_dilations = _four('layer_dilations', layer_dilations)
        resolved = []
        for i, num_blocks in enumerate(self.arch['num_blocks']):
            pattern = list(layer_dilations[i] or [])
            if len(pattern) > num_blocks:
                raise ConfigError(
                    f'layer_dilations[{i}] has {len(pattern)} entries but '
                    f'stage {i} has only {num_blocks} layers')
            if any(not isinstance(d, int) or d < 1 for d in pattern):
                raise ConfigError(f'layer_dilations[{i}] must hold '
                                  f'positive ints, got {pattern}')
            first = [self.dilations[i]] * (num_blocks - len(pattern))
            resolved.append(tuple(first + pattern))
        return tuple(resolved)

    def init_weights(self):
        """mmengine's init, but a ``Pretrained`` init_cfg loads any layout,
        all tensors or an error (mmengine's is non-strict)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else (
            [self.init_cfg] if self.init_cfg else [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained or self.is_init:
            return super().init_weights()
        saved = self.init_cfg
        self.init_cfg = [c for c in cfgs if c.get('type') != 'Pretrained']
        try:
            super().init_weights()
        finally:
            self.init_cfg = saved
        load_init_cfg(self, pretrained[-1])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # other layouts mapped in place (children load from ``state_dict``)
        before_backbone_load(self, state_dict, prefix, local_metadata,
                             unexpected_keys, error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor):
        # the four stages by name (not getattr): TorchScript compiles this
        x = self.stem(x)
        x1 = self.stage_1(x)
        x2 = self.stage_2(x1)
        x3 = self.stage_3(x2)
        x4 = self.stage_4(x3)
        stages = [x1, x2, x3, x4]
        outs = [stages[i] for i in self.out_indices]
        if torch.jit.is_scripting():
            return outs  # TorchScript has no variable-length tuples
        return tuple(outs)

    def blocks(self):
        """All :class:`RepVGGBlock` of the backbone, stem first."""
        return [m for m in self.modules() if isinstance(m, RepVGGBlock)]

    def switch_to_deploy(self) -> None:
        """Fuse every block in place. Idempotent."""
        for block in self.blocks():
            block.switch_to_deploy()
        self.deploy = True
        self._freeze_stages()  # the fused convs of frozen stages stay frozen

    def _freeze_stages(self):
        if self.frozen_stages >= 0:
            for name in ['stem'] + self.stage_names[:self.frozen_stages]:
                getattr(self, name).eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
