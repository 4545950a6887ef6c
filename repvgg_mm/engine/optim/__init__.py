"""Optimizer parts, registered in mmengine's root registries on import."""
from .cpu_amp import CPUAmpOptimWrapper
from .custom_l2 import (CustomL2AmpOptimWrapper, CustomL2CPUAmpOptimWrapper,
                        CustomL2OptimWrapper, CustomL2Penalty,
                        RepVGGCustomL2Constructor, block_custom_l2)

__all__ = ['CPUAmpOptimWrapper', 'CustomL2AmpOptimWrapper',
           'CustomL2CPUAmpOptimWrapper', 'CustomL2OptimWrapper',
           'CustomL2Penalty', 'RepVGGCustomL2Constructor', 'block_custom_l2']
