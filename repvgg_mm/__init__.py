"""RepVGG for the OpenMMLab ecosystem.

``import repvgg_mm`` (or ``custom_imports=dict(imports=['repvgg_mm'])`` in a
config) registers ``RepVGGMM``, ``RepVGGBlock`` and ``QARepVGGBlock`` in
mmengine's root model registry, so they build under any scope (mmpretrain,
mmseg, ...), and the hooks in mmengine's root hook registry.
"""
from . import engine  # noqa: F401  (registers hooks and optimizer parts)
from .deploy import count_repvgg_blocks, switch_to_deploy
from .fusion import equivalent_kernel_bias
from .io.checkpoint import allow_mmengine_checkpoint_types
from .models import ARCH_SETTINGS, QARepVGGBlock, RepVGGBlock, RepVGGMM, SEGate
from .version import __version__

# mmengine 0.10.7 + torch >= 2.6: let weights_only loading (the default) read
# mmengine's own checkpoint types, so --resume works (torch 2.6 made
# weights_only=True the default).
allow_mmengine_checkpoint_types()

__all__ = [
    'ARCH_SETTINGS', 'QARepVGGBlock', 'RepVGGBlock', 'RepVGGMM', 'SEGate',
    'count_repvgg_blocks', 'equivalent_kernel_bias', 'switch_to_deploy',
    '__version__'
]
