"""The CPU's name and the ``/proc/cpuinfo`` flags that decide which
precisions run fast (read here only, once)."""
import contextlib
import functools
import platform
from typing import Dict, FrozenSet, Tuple

import torch

#: /proc/cpuinfo flags recorded with every benchmark
FEATURES = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16',
            'amx_tile', 'amx_bf16', 'amx_int8')


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> Tuple[str, FrozenSet[str]]:
    """``(model name, flags)`` of the first processor in /proc/cpuinfo."""
    info = {}
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:  # Linux
        for line in f:
            key, _, value = line.partition(':')
            info.setdefault(key.strip(), value.strip())
    flags = info.get('flags') or info.get('Features') or ''  # x86 / Arm
    return (info.get('model name') or platform.processor() or 'unknown CPU',
            frozenset(flags.split()))


def cpu_name() -> str:
    """``'AMD EPYC 9R14'``: the model name of the CPU."""
    return _cpuinfo()[0]


def supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX-512 BF16 or AMX; Arm ``bf16``): the one
    rule for bf16 training (``amp=True`` on a CPU) and bf16 servings."""
    return bool(_cpuinfo()[1] & {'avx512_bf16', 'amx_bf16', 'bf16'})


def cpu_features() -> Dict[str, object]:
    """The CPU of a benchmark record; ``int8_dot`` (VNNI, AMX-INT8, Arm
    dotprod) makes INT8 convolutions several times faster than fp32."""
    name, flags = _cpuinfo()
    return dict(name=name, flags=[f for f in FEATURES if f in flags],
                torch_capability=torch.backends.cpu.get_cpu_capability(),
                bf16=supports_bf16(), int8_dot=bool(flags & {
                    'avx512_vnni', 'avx_vnni', 'amx_int8', 'asimddp'}))
