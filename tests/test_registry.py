"""type='RepVGGMM' builds inside mmpretrain and mmseg configs (issue 2.5)."""
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from repvgg_mm import RepVGGMM

TINY = dict(num_blocks=[1, 1, 1, 1], width_factor=[0.25, 0.25, 0.25, 0.5])

CLS_CFG = f"""
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepVGGMM', arch={TINY!r}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,
              loss=dict(type='CrossEntropyLoss')))
"""

SEG_CFG = f"""
custom_imports = dict(imports=['repvgg_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=(64, 64)),
    backbone=dict(type='RepVGGMM', arch={TINY!r}, out_indices=(2, 3),
                  strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                  norm_cfg=norm_cfg),
    decode_head=dict(type='PSPHead', in_channels=256, in_index=1,
                     channels=32, pool_scales=(1, 2, 3, 6), num_classes=19,
                     norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss')),
    auxiliary_head=dict(type='FCNHead', in_channels=64, in_index=0,
                        channels=16, num_convs=1, num_classes=19,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss',
                                         loss_weight=0.4)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""


def _build(cfg_text, tmp_path, name):
    path = tmp_path / name
    path.write_text(cfg_text)
    cfg = Config.fromfile(str(path))  # honours custom_imports
    init_default_scope(cfg.default_scope)
    registry = DefaultScope.get_current_instance().scope_name
    if registry == 'mmpretrain':
        from mmpretrain.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_builds_in_mmpretrain_image_classifier(tmp_path):
    model = _build(CLS_CFG, tmp_path, 'cls.py').eval()
    assert type(model).__name__ == 'ImageClassifier'
    assert isinstance(model.backbone, RepVGGMM)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_builds_in_mmseg_encoder_decoder(tmp_path):
    model = _build(SEG_CFG, tmp_path, 'seg.py').eval()
    assert type(model).__name__ == 'EncoderDecoder'
    assert isinstance(model.backbone, RepVGGMM)
    assert isinstance(model.backbone.stem.branch_3x3.norm,
                      torch.nn.SyncBatchNorm)
    feats = model.extract_feat(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [8, 8]  # output stride 8
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 19, 8, 8)
