# RepVGG-B1G4 on ImageNet-1k, 8 GPUs x 32 images.
# 120-epoch recipe (paper Sec. 4.1, Table 4): RandomResizedCrop + flip.
# Paper top-1: 77.58.
_base_ = [
    '_base_/models/repvgg_in1k.py',
    '_base_/datasets/imagenet_bs32.py',
    '_base_/schedules/imagenet_bs256_120e_coslr.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='b1g4'), head=dict(in_channels=2048))
