# The converted (deploy) form of qarepvgg-tiny_digits.py: every block is one
# 3x3 conv + ReLU, the post-sum BN folded in.
_base_ = './qarepvgg-tiny_digits.py'

model = dict(backbone=dict(deploy=True))
