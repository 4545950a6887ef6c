# PSPNet + RepVGG-B1g2-fast (paper Table 8: 78.88 mIoU): stride 1 in paper
# stages 4 and 5 as in the normal variant, but only the last 5 layers are
# dilated: the last 4 of stage 4 (dilation 2) and the single layer of stage
# 5 (dilation 4).
_base_ = './pspnet_repvgg-b1g2-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(
    backbone=dict(
        dilations=(1, 1, 1, 1),
        layer_dilations=(None, None, [2, 2, 2, 2], [4])))
