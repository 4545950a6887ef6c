"""Mixed precision on CPU: bf16 autocast (no loss scaling needed).

mmengine 0.10.7's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device,
so ``--amp`` on a CPU uses :class:`CPUAmpOptimWrapper`: the forward pass
(``optim_context``) runs under ``torch.autocast('cpu', torch.bfloat16)``.
bf16 has fp32's exponent range, so gradients need no scaling.
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


class CPUAmpMixin:
    """Runs the forward pass under CPU bf16 autocast."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(CPUAmpMixin, OptimWrapper):
    """``OptimWrapper`` whose forward runs in bf16 autocast on the CPU."""
