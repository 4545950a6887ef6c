"""Wall-clock throughput of a model's forward pass (CPU or CUDA)."""
import time
from typing import Callable, List

import torch


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_forward(forward: Callable[[], object], device='cpu', warmup: int = 2,
                 iters: int = 5) -> List[float]:
    """Seconds per call of ``forward()`` for ``iters`` timed calls.

    ``warmup`` untimed calls come first; CUDA work is synchronised before
    each clock read so queued kernels are counted.
    """
    device = torch.device(device)
    for _ in range(warmup):
        forward()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        forward()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times
