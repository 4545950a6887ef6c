"""BatchNorm running statistics left untouched by a repeated forward."""
import contextlib
from typing import Iterator

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

#: the buffers of a BatchNorm layer that a training-mode forward updates
NORM_STATISTICS = ('running_mean', 'running_var', 'num_batches_tracked')


@contextlib.contextmanager
def spare_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Let the BatchNorm layers of ``module`` update copies of their running
    statistics, and put the originals back afterwards.

    Used for the recomputation of gradient checkpointing: it re-runs the
    block in training mode, and BN would otherwise update ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` a second time per step. The
    recomputation still normalises with the batch statistics (same output)
    and saves the same number of tensors as the first forward, which
    ``torch.utils.checkpoint`` checks.
    """
    saved = []
    for norm in module.modules():
        if isinstance(norm, _BatchNorm) and norm.track_running_stats:
            originals = {name: getattr(norm, name) for name in NORM_STATISTICS}
            for name, buffer in originals.items():
                setattr(norm, name, buffer.clone())
            saved.append((norm, originals))
    try:
        yield
    finally:
        for norm, originals in saved:
            for name, buffer in originals.items():
                setattr(norm, name, buffer)
