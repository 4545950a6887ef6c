# RepVGG-B3G4 on ImageNet-1k, 8 GPUs x 32 images.
# 200-epoch recipe (paper Sec. 4.1, Table 5): 5 warm-up epochs, AutoAugment,
# label smoothing 0.1, mixup.
# Paper top-1: 80.21.
_base_ = [
    '_base_/models/repvgg_in1k_lbs_mixup.py',
    '_base_/datasets/imagenet_bs32_autoaug.py',
    '_base_/schedules/imagenet_bs256_200e_coslr_warmup.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='b3g4'), head=dict(in_channels=2560))
