# QARepVGG-B1G2, deploy form: every block is one 3x3 conv + ReLU (the
# post-sum BN folded in). Loads a converted checkpoint; a training-form
# checkpoint is fused on the fly while loading. Evaluate with
#   python tools/test.py configs/deploy/qarepvgg-b1g2_8xb32_in1k_deploy.py CKPT
_base_ = '../qarepvgg-b1g2_8xb32_in1k.py'

model = dict(backbone=dict(deploy=True))
