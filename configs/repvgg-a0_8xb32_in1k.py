# RepVGG-A0 on ImageNet-1k, 8 GPUs x 32 images.
# 120-epoch recipe (paper Sec. 4.1, Table 4): RandomResizedCrop + flip.
# Paper top-1: 72.41.
_base_ = [
    '_base_/models/repvgg_in1k.py',
    '_base_/datasets/imagenet_bs32.py',
    '_base_/schedules/imagenet_bs256_120e_coslr.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='a0'), head=dict(in_channels=1280))
