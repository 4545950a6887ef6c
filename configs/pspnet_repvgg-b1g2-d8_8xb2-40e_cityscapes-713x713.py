# PSPNet + RepVGG-B1g2, output stride 8, Cityscapes 713x713, 40 epochs
# (paper Table 8: 78.70 mIoU). The other RepVGG and ResNet PSPNet configs
# inherit from this one, so the protocol is defined once.
_base_ = [
    './_base_/models/pspnet_repvgg-d8.py',
    './_base_/datasets/cityscapes_713x713.py',
    './_base_/schedules/cityscapes_40e.py', './_base_/seg_runtime.py'
]
crop_size = _base_.crop_size
# Evaluation: sliding 713x713 windows with stride 476 (2/3 of the crop, 2x4
# windows per 1024x2048 image), so the network, PSP pooling bins included,
# sees at test time exactly the input size it was trained on. 713 = 8*89+1:
# with align_corners=True the 90x90 stride-8 grid maps onto the crop's
# corners exactly (as in mmseg's 769x769 Cityscapes configs).
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(align_corners=True),
    auxiliary_head=dict(align_corners=True),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(476, 476)))
