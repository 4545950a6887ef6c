# RetinaNet + ResNet-50 + FPN baseline (mmdet's retinanet_r50_fpn_1x_coco)
# under the very same protocol as the RepVGG configs: it inherits the
# RepVGG-A0 config and swaps only the backbone (mmdet's ResNet-50 with its
# usual settings and torchvision's ImageNet weights) and the FPN's input
# widths that follow from it.
_base_ = './retinanet_repvgg-a0_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
