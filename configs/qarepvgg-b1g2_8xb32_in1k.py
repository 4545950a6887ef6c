# QARepVGG-B1G2 on ImageNet-1k, 8 GPUs x 32 images.
# RepVGG's 120-epoch recipe (RandomResizedCrop + flip, cosine lr 0.1)
# with plain weight decay, no custom L2 (arXiv 2212.01593).
# fp32 / INT8 top-1: the paper's ImageNet table (not reproduced here).
_base_ = [
    '_base_/models/qarepvgg_in1k.py',
    '_base_/datasets/imagenet_bs32.py',
    '_base_/schedules/imagenet_bs256_120e_coslr_qarepvgg.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='b1g2'), head=dict(in_channels=2048))
