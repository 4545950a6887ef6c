# The 120-epoch RepVGG recipe (paper Sec. 4.1, Table 4): batch 256
# (8 GPUs x 32), SGD momentum 0.9, lr 0.1 with cosine decay to 0, weight decay
# 1e-4 -- except on biases, BN betas and the BN gammas of the 3x3 and 1x1
# branches. The identity branch's BN gamma (``branch_norm.weight``) IS decayed.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(
        # every ``bias`` (conv/fc biases, SE biases, deploy-form
        # ``branch_reparam.bias``, and BN betas) gets no decay ...
        bias_decay_mult=0.0,
        # ... nor do the 3x3/1x1 branch BNs (gamma and beta). Custom keys win
        # over the rules above; mmengine tries the longest key first.
        custom_keys={
            'branch_3x3.norm': dict(decay_mult=0.0),
            'branch_1x1.norm': dict(decay_mult=0.0),
            'branch_norm.bias': dict(decay_mult=0.0),
        }),
)

param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=120,
    by_epoch=True,
    begin=0,
    end=120,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr 0.1 is for a global batch of 256; ``--auto-scale-lr`` rescales it
# linearly for another number of GPUs x batch size.
auto_scale_lr = dict(base_batch_size=256)
