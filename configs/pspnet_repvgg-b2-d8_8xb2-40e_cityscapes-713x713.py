# PSPNet + RepVGG-B2 (paper Table 8: 80.57 mIoU). B2 stage widths 640/2560.
_base_ = './pspnet_repvgg-b1g2-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(
    backbone=dict(
        arch='b2',
        # or, as published: the official RepVGG-B2-train.pth, mmpretrain's
        # repvgg-B2_8xb32_in1k_20221213-d8b420ef.pth, timm's repvgg_b2
        init_cfg=dict(checkpoint='checkpoints/repvgg-b2_8xb32_in1k.pth')),
    decode_head=dict(in_channels=2560),
    auxiliary_head=dict(in_channels=640))
