"""Mixed precision on CPU: bf16 autocast (no loss scaling needed).

mmengine 0.10.7's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device,
so ``--amp`` on a CPU uses :class:`CPUAmpOptimWrapper`.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 kernels natively (oneDNN's check: AVX-512
    BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    return bool(torch.backends.mkldnn.is_available() and check is not None
                and check())


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs in bf16 autocast on the CPU (bf16
    has fp32's exponent range: gradients need no scaling)."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield
