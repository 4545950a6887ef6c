# The 120-epoch schedule of RepVGG (batch 256, SGD momentum 0.9, lr 0.1 with
# cosine decay, weight decay 1e-4) with QARepVGG's plain weight decay
# (arXiv 2212.01593: no custom L2, which enlarges the variance of the fused
# kernels). Decayed: every conv and linear kernel, the BN-free 1x1 kernels
# included. Not decayed: biases and the BNs (gamma and beta), as RepVGG's
# recipe leaves its branch BNs undecayed. QARepVGG has no identity BN, so
# RepVGG's one decayed gamma has no counterpart.
_base_ = './imagenet_bs256_120e_coslr.py'

optim_wrapper = dict(
    paramwise_cfg=dict(_delete_=True, bias_decay_mult=0.0,
                       norm_decay_mult=0.0))
