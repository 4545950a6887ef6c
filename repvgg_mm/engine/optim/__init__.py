"""Optimizer parts, registered in mmengine's root registries on import."""
from .custom_l2 import (CustomL2AmpOptimWrapper, CustomL2OptimWrapper,
                        CustomL2Penalty, RepVGGCustomL2Constructor,
                        block_custom_l2)

__all__ = [
    'CustomL2AmpOptimWrapper', 'CustomL2OptimWrapper', 'CustomL2Penalty',
    'RepVGGCustomL2Constructor', 'block_custom_l2'
]
