from .arch import ARCH_SETTINGS, parse_arch
from .qarepvgg_block import QARepVGGBlock
from .repvgg import RepVGGMM
from .repvgg_block import RepVGGBlock
from .se_layer import SEGate

__all__ = ['ARCH_SETTINGS', 'parse_arch', 'QARepVGGBlock', 'RepVGGMM',
           'RepVGGBlock', 'SEGate']
