# PSPNet + ResNet-50 baseline (paper Table 8: 77.17 mIoU) under the very same
# protocol as the RepVGG configs: it inherits the RepVGG-B1g2 config and
# swaps only the backbone, for mmseg's PSPNet backbone (ResNetV1c, output
# stride 8, ImageNet weights open-mmlab://resnet50_v1c).
_base_ = './pspnet_repvgg-b1g2-d8_8xb2-40e_cityscapes-713x713.py'
norm_cfg = _base_.norm_cfg
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='open-mmlab://resnet50_v1c')),
    decode_head=dict(in_channels=2048),
    auxiliary_head=dict(in_channels=1024))
