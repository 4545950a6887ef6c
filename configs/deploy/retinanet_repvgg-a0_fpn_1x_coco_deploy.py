# Deploy (re-parameterized) form of ../retinanet_repvgg-a0_fpn_1x_coco.py:
# every RepVGG block is one 3x3 conv + ReLU. Loads checkpoints written by
# tools/convert_deploy.py, and training-form checkpoints too (fused on load).
_base_ = '../retinanet_repvgg-a0_fpn_1x_coco.py'
model = dict(backbone=dict(deploy=True))
