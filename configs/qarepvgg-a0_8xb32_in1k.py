# QARepVGG-A0 on ImageNet-1k, 8 GPUs x 32 images.
# RepVGG's 120-epoch recipe (RandomResizedCrop + flip, cosine lr 0.1)
# with plain weight decay, no custom L2 (arXiv 2212.01593).
# Paper top-1: 72.2 fp32, 70.4 INT8 with standard post-training quantization
# (RepVGG-A0: 72.4 fp32, 52.2 INT8).
_base_ = [
    '_base_/models/qarepvgg_in1k.py',
    '_base_/datasets/imagenet_bs32.py',
    '_base_/schedules/imagenet_bs256_120e_coslr_qarepvgg.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='a0'), head=dict(in_channels=1280))
