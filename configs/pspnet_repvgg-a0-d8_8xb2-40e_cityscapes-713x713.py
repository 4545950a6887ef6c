# PSPNet + RepVGG-A0: a light segmentor (not in the paper). A0 stage widths
# 192/1280.
_base_ = './pspnet_repvgg-b1g2-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(
    backbone=dict(
        arch='a0',
        init_cfg=dict(checkpoint='checkpoints/repvgg-a0_8xb32_in1k.pth')),
    decode_head=dict(in_channels=1280),
    auxiliary_head=dict(in_channels=192))
