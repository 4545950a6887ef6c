"""The machine's dense fp32 matrix-multiply rate: the yardstick for how
close a model's convolutions come to the hardware's best."""
from typing import Optional

import torch

#: n for the n x n x n product; large enough to be compute-bound
GEMM_SIZE = 2048


def gemm_call(device='cpu', n: int = GEMM_SIZE, dtype=torch.float32,
              threads: Optional[int] = None):
    """``(forward, macs)``: one ``torch.mm`` of two ``n x n`` matrices, with
    ``threads`` CPU threads (``None``: torch's setting)."""
    from .serving import num_threads
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)

    def forward():
        with num_threads(threads):
            return torch.mm(a, b)

    return forward, n**3
