# The 200-epoch RepVGG recipe (paper Sec. 4.1, Table 5): the 120-epoch
# optimizer (including its weight-decay exceptions) for 200 epochs, with 5
# linear warm-up epochs before the cosine decay. AutoAugment, label smoothing
# and mixup are in the dataset and model bases this recipe is paired with
# (imagenet_bs32_autoaug.py, repvgg_in1k_lbs_mixup.py).
_base_ = './imagenet_bs256_120e_coslr.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=195,
        by_epoch=True,
        begin=5,
        end=200,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
