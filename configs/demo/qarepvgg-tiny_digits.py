# The QARepVGG variant of repvgg-tiny_digits.py, for the INT8 comparison:
# the same architecture, data, schedule and seed; only the block differs
# (3x3 conv + BN, BN-free 1x1 conv and identity, one BN after the sum;
# arXiv 2212.01593). The optimizer already uses plain weight decay, which is
# QARepVGG's recipe.
#   python tools/demo_digits.py --config configs/demo/qarepvgg-tiny_digits.py
_base_ = './repvgg-tiny_digits.py'

model = dict(backbone=dict(block_cfg=dict(type='QARepVGGBlock')))
