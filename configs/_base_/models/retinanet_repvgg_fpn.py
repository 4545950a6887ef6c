# RetinaNet with a RepVGG backbone and FPN (mmdet 3.x conventions).
#
# The RepVGG counterpart of mmdet's `_base_/models/retinanet_r50_fpn.py`:
# only the backbone and the FPN's input widths differ. RepVGGMM's four
# post-stem stages (paper stages 2-5) have strides 4, 8, 16, 32, like
# ResNet's four stages, so the neck is the same: all four stages out,
# `start_level=1` (C3-C5 into the FPN), P6 and P7 from extra convs on C5.
#
# FPN `in_channels` are the backbone's stage widths (RepVGGMM.out_channels):
# A0 48/96/192/1280 here; for another arch set `model.backbone.arch` and
# `model.neck.in_channels` (table in docs/detection.md). A mismatch is
# reported by tools/train.py, tools/test.py and tools/convert_deploy.py with
# the right list.
#
# SyncBN in the backbone: statistics over the global batch (8 GPUs x 2
# images) instead of 2 images per GPU. On one process mmengine turns it
# into plain BN.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='RepVGGMM',
        arch='a0',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,  # stem + first stage frozen, as ResNet's stem+res2
        norm_cfg=norm_cfg,
        norm_eval=False,
        # ImageNet weights: any of these files as published (layout detected,
        # docs/conversion.md): the official RepVGG-A0-train.pth (-deploy.pth
        # with deploy=True); mmpretrain's
        # repvgg-A0_8xb32_in1k_20221213-60ae8e23.pth
        # (download.openmmlab.com/mmclassification/v0/repvgg/); timm's
        # repvgg_a0; or a checkpoint of configs/repvgg-a0_8xb32_in1k.py.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/repvgg-a0_8xb32_in1k.pth',
            prefix='backbone.')),
    neck=dict(
        type='FPN',
        in_channels=[48, 96, 192, 1280],
        out_channels=256,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=4,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),  # focal loss: no sampling
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
