# RetinaNet + RepVGG-A0 + FPN on COCO, 1x schedule (12 epochs, global batch
# 16 on 8 GPUs). Not in the paper. The other RetinaNet configs inherit from
# this one, so the protocol is defined once; the ResNet-50 baseline
# (retinanet_r50_fpn_1x_coco.py) differs only in the backbone.
_base_ = [
    './_base_/models/retinanet_repvgg_fpn.py',
    './_base_/datasets/coco_detection.py',
    './_base_/schedules/schedule_1x.py', './_base_/det_runtime.py'
]
