# PSPNet with a RepVGG backbone at output stride 8 (paper Sec. 4.3, Table 8).
#
# The RepVGG counterpart of mmseg's `_base_/models/pspnet_r50-d8.py`: only
# the backbone differs. RepVGGMM's four post-stem stages are the paper's
# stages 2-5; stages 4 and 5 (`stage_3`, `stage_4`) get stride 1 and
# dilations 2 and 4 in every 3x3 layer. The heads read `out_indices=(2, 3)`:
# the PSP head (pool scales 1, 2, 3, 6) the last stage, the auxiliary FCN
# head (loss weight 0.4) paper stage 4.
#
# Head widths follow the backbone's stage widths (RepVGGMM.out_channels):
# B1g2 512 / 2048 here; for another arch set `model.backbone.arch` and both
# `in_channels` (table in README.md).
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='RepVGGMM',
        arch='b1g2',
        out_indices=(2, 3),
        strides=(2, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        norm_cfg=norm_cfg,
        norm_eval=False,
        # ImageNet weights: any of these files as published (layout detected,
        # docs/conversion.md): the official RepVGG-B1g2-train.pth (-deploy.pth
        # with deploy=True); mmpretrain's
        # repvgg-B1g2_8xb32_in1k_20221213-ae6428fd.pth
        # (download.openmmlab.com/mmclassification/v0/repvgg/); or a
        # checkpoint of configs/repvgg-b1g2_8xb32_in1k.py (timm has no B1g2).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/repvgg-b1g2_8xb32_in1k.pth',
            prefix='backbone.')),
    decode_head=dict(
        type='PSPHead',
        in_channels=2048,
        in_index=1,
        channels=512,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=512,
        in_index=0,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
