# RepVGG for ImageNet-1k classification (mmpretrain ImageClassifier).
# Per-architecture configs override ``backbone.arch`` and ``head.in_channels``
# (the width of the last stage: 1280 for a0/a1/b0, 1408 for a2, 2048 for
# b1*, 2560 for b2*/b3*/d2se).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepVGGMM', arch='a0', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)
