# RetinaNet + RepVGG-B1g2 + FPN on COCO, 1x schedule. Not in the paper.
# B1g2 stage widths 128/256/512/2048 (the FPN reads the last three).
_base_ = './retinanet_repvgg-a0_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='b1g2',
        init_cfg=dict(checkpoint='checkpoints/repvgg-b1g2_8xb32_in1k.pth')),
    neck=dict(in_channels=[128, 256, 512, 2048]))
