# The model of the 200-epoch recipe (paper Sec. 4.1, Table 5): label
# smoothing 0.1 and mixup on top of the plain RepVGG classifier.
_base_ = './repvgg_in1k.py'

model = dict(
    head=dict(
        loss=dict(
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            num_classes=1000,
            loss_weight=1.0)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)),
)
