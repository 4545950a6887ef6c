# PSPNet + ResNet-101 baseline (paper Table 8: 78.51 mIoU), same protocol.
_base_ = './pspnet_r50-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='open-mmlab://resnet101_v1c')))
