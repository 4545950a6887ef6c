"""Mixed precision on the CPU: mmengine 0.10.7's ``AmpOptimWrapper`` asserts
a CUDA/NPU/MLU/MUSA device, so ``--amp`` on a CPU uses this wrapper."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs in bf16 autocast on the CPU (bf16
    has fp32's exponent range: gradients need no scaling)."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield
