# Deploy (re-parameterized) form of
# ../pspnet_repvgg-b2-fast-d8_8xb2-40e_cityscapes-713x713.py:
# every RepVGG block
# is one 3x3 conv + ReLU. Loads checkpoints written by
# tools/convert_deploy.py, and training-form checkpoints too (fused on load).
_base_ = '../pspnet_repvgg-b2-fast-d8_8xb2-40e_cityscapes-713x713.py'
model = dict(backbone=dict(deploy=True))
