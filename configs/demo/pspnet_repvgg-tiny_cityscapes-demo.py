# A tiny PSPNet + RepVGG "-fast" segmentor on the synthetic Cityscapes-layout
# data of tools/make_cityscapes_demo.py: the real configs' bases and
# protocol, scaled down to train on a CPU in about a minute (300 iterations).
#
#   python tools/make_cityscapes_demo.py data/cityscapes_demo
#   python tools/train.py configs/demo/pspnet_repvgg-tiny_cityscapes-demo.py
_base_ = '../pspnet_repvgg-b1g2-fast-d8_8xb2-40e_cityscapes-713x713.py'

data_root = 'data/cityscapes_demo/'
img_scale = (128, 64)  # (w, h) of the demo images: Cityscapes / 16
crop_size = (64, 64)
max_iters = 300
norm_cfg = dict(type='BN', requires_grad=True)  # also runs without a GPU

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        # B1g2's layout in miniature: grouped even layers, stage_3 long
        # enough for the "-fast" pattern (2 undilated + 4 dilated layers).
        arch=dict(
            _delete_=True,
            num_blocks=(1, 2, 6, 1),
            width_factor=(0.25, 0.25, 0.25, 0.25),
            groups=2),
        norm_cfg=norm_cfg,
        init_cfg=None),  # no ImageNet weights for this arch
    decode_head=dict(in_channels=128, channels=32, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, norm_cfg=norm_cfg),
    test_cfg=dict(crop_size=crop_size, stride=(43, 43)))

# The real pipelines with the demo's image and crop sizes.
train_pipeline = [
    dict(t, scale=img_scale) if t.type == 'RandomResize' else
    dict(t, crop_size=crop_size) if t.type == 'RandomCrop' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optimizer = dict(lr=0.05)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [dict(_base_.param_scheduler[0], end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
