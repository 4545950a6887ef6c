"""RepVGG for the OpenMMLab ecosystem: ``import repvgg_mm`` (or
``custom_imports=dict(imports=['repvgg_mm'])``) registers the models, hooks
and optimizer parts in mmengine's root registries, under any scope."""
from . import engine  # noqa: F401  (registers hooks and optimizer parts)
from .deploy import count_repvgg_blocks, switch_to_deploy
from .engine.checkpoint_loader import register_checkpoint_loaders
from .fusion import equivalent_kernel_bias
from .models import ARCH_SETTINGS, QARepVGGBlock, RepVGGBlock, RepVGGMM, SEGate
from .version import __version__

# The one global change: mmengine's checkpoint reads become this package's
# safe reader, which also reads mmengine 0.10.7's checkpoints under
# torch >= 2.6 and finds a RepVGGMM's weights in any layout.
register_checkpoint_loaders()

__all__ = ['ARCH_SETTINGS', 'QARepVGGBlock', 'RepVGGBlock', 'RepVGGMM',
           'SEGate', 'count_repvgg_blocks', 'equivalent_kernel_bias',
           'switch_to_deploy', '__version__']
