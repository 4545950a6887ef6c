"""The CPU: its name and the features that decide which precisions run
fast (bf16, int8). ``/proc/cpuinfo`` is read once, here, for everything
(benchmark records, the bf16 servings, the deploy job's report)."""
import functools
import platform
from typing import Dict, FrozenSet, Tuple

import torch

#: /proc/cpuinfo flags recorded with every benchmark
FEATURES = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16',
            'amx_tile', 'amx_bf16', 'amx_int8')
#: flags of native bf16 arithmetic (x86: AVX-512 BF16, AMX; Arm: bf16)
BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16', 'bf16'})
#: flags of int8 dot-product instructions (x86 VNNI / AMX; Arm: dotprod)
INT8_FLAGS = frozenset({'avx512_vnni', 'avx_vnni', 'amx_int8', 'asimddp'})


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> Tuple[str, FrozenSet[str]]:
    """``(model name, flags)`` of the first processor in /proc/cpuinfo."""
    name, flags = '', frozenset()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not name:
                    name = value.strip()
                elif key in ('flags', 'Features') and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:  # not Linux
        pass
    return name or platform.processor() or 'unknown CPU', flags


def cpu_name() -> str:
    """``'AMD EPYC 9R14'``: the model name of the CPU."""
    return _cpuinfo()[0]


def cpu_features() -> Dict[str, object]:
    """``dict(name=..., flags=[...of FEATURES present],
    torch_capability='AVX512', bf16=bool, int8_dot=bool)``."""
    name, flags = _cpuinfo()
    return dict(name=name, flags=[f for f in FEATURES if f in flags],
                torch_capability=torch.backends.cpu.get_cpu_capability(),
                bf16=supports_bf16(), int8_dot=supports_int8_dot())


def supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX-512 BF16 or AMX; Arm ``bf16``). The one
    rule of the project for offering bf16 servings."""
    return bool(_cpuinfo()[1] & BF16_FLAGS)


def supports_int8_dot() -> bool:
    """int8 dot-product instructions (VNNI, AMX-INT8; Arm dotprod): what
    makes INT8 convolutions several times faster than fp32."""
    return bool(_cpuinfo()[1] & INT8_FLAGS)
