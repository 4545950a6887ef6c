# The converted (deploy) form of repvgg-tiny_digits.py: every block is one
# 3x3 conv + ReLU. Evaluate the checkpoint written by tools/demo_digits.py:
#   python tools/test.py configs/demo/repvgg-tiny_digits_deploy.py \
#       work_dirs/digits_demo/repvgg-tiny_digits_deploy.pth
_base_ = './repvgg-tiny_digits.py'

model = dict(backbone=dict(deploy=True))
