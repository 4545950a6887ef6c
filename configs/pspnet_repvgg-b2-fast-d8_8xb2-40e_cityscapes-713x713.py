# PSPNet + RepVGG-B2-fast (paper Table 8: 79.52 mIoU): B2 with the "-fast"
# dilation pattern (see the B1g2-fast config).
_base_ = './pspnet_repvgg-b2-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(
    backbone=dict(
        dilations=(1, 1, 1, 1),
        layer_dilations=(None, None, [2, 2, 2, 2], [4])))
