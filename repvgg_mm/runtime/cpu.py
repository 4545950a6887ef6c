"""CPU features that decide which precisions run fast (bf16, int8)."""
from typing import Dict, List

import torch

#: /proc/cpuinfo flags recorded with every benchmark
FEATURES = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile',
            'amx_bf16', 'amx_int8')


def _cpu_flags() -> List[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return line.split(':', 1)[1].split()
    except OSError:
        pass
    return []


def cpu_features() -> Dict[str, object]:
    """``dict(flags=[...of FEATURES present], torch_capability='AVX512')``.
    """
    flags = set(_cpu_flags())
    return dict(flags=[f for f in FEATURES if f in flags],
                torch_capability=torch.backends.cpu.get_cpu_capability())


def supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX-512 BF16 or AMX; Arm ``bf16``)."""
    flags = set(_cpu_flags())
    return bool(flags & {'avx512_bf16', 'amx_bf16', 'bf16'})
