# ImageNet-1k for the 200-epoch recipe (paper Sec. 4.1, Table 5): the
# simple pipeline plus AutoAugment (the ImageNet policy) after the crop/flip.
_base_ = './imagenet_bs32.py'

bgr_mean = [103.53, 116.28, 123.675]  # fill value of AutoAugment, BGR order
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='AutoAugment',
        policies='imagenet',
        hparams=dict(pad_val=[round(x) for x in bgr_mean])),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
