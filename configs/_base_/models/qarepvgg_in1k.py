# QARepVGG for ImageNet-1k classification: the RepVGG classifier with every
# block a QARepVGGBlock (3x3 conv + BN, BN-free 1x1 conv and identity, one BN
# after the sum). Per-architecture configs override ``backbone.arch`` and
# ``head.in_channels`` as for RepVGG.
_base_ = './repvgg_in1k.py'

model = dict(backbone=dict(block_cfg=dict(type='QARepVGGBlock')))
