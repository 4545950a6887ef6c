# A small RepVGG trained from scratch on the scikit-learn digits, on CPU.
# The README's main job: `python tools/demo_digits.py` (train -> test ->
# convert -> test -> identical predictions -> images/s of both forms).
_base_ = [
    '../_base_/datasets/digits.py',
    '../_base_/default_runtime.py',
]

# RepVGG block structure (a stem block + 4 stages, 3x3 + 1x1 + identity
# branches) sized for 32x32 digits: widths 16/32/64/128 (a = b = 0.25) and
# stride 1 in stage 1 so the last stage still sees a 2x2 map (32 -> stem 16
# -> 16 -> 8 -> 4 -> 2).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RepVGGMM',
        arch=dict(num_blocks=[2, 2, 2, 1],
                  width_factor=[0.25, 0.25, 0.25, 0.25]),
        in_channels=1,
        strides=(1, 2, 2, 2),
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)

# CPU-sized schedule: 1,438 training images, batch 64 -> 23 iterations/epoch.
max_epochs = 30
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4,
                   nesterov=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=23),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='auto'),
)
randomness = dict(seed=0, deterministic=False)

# Validation runs on the converted (deploy) form; after training the hook
# writes <checkpoint>_deploy.pth and <work_dir>/repvgg-tiny_digits_deploy.py.
custom_hooks = [dict(type='SwitchToDeployHook')]
