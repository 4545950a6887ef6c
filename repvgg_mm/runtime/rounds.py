"""Timing rounds that alternate between everything under test.

Every round times each entry once (warm-up calls, then timed calls), so slow
drift of the machine (thermal, other processes) hits all entries alike;
ratios are then taken round by round (:mod:`.stats`). The order rotates by
one entry per round, so no entry always runs first or right after the same
neighbour.

How long an entry is timed per round: a fixed number of calls (``iters``),
or -- better on a shared machine -- a timed window (``min_time`` seconds:
as many calls as fill it, at least ``iters``), so a fast entry is not
judged on a few milliseconds of clock.
"""
import statistics
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
from mmengine.logging import print_log


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_forward(forward: Callable[[], object], device='cpu', warmup: int = 2,
                 iters: int = 5,
                 min_time: Optional[float] = None) -> List[float]:
    """Seconds per call of ``forward()`` for the timed calls.

    ``warmup`` untimed calls come first; CUDA work is synchronised before
    each clock read so queued kernels are counted. With ``min_time``, calls
    go on until they add up to at least ``min_time`` seconds (and at least
    ``iters`` calls).
    """
    device = torch.device(device)
    for _ in range(warmup):
        forward()
    _sync(device)
    times = []
    total = 0.0
    while len(times) < iters or (min_time is not None and total < min_time):
        start = time.perf_counter()
        forward()
        _sync(device)
        times.append(time.perf_counter() - start)
        total += times[-1]
    return times


class Entry(NamedTuple):
    """One thing to time."""

    key: str  #: unique label, e.g. ``'repvgg-a0 / deploy / channels_last'``
    forward: Callable[[], object]
    items_per_call: int  #: images per call (batch size); GEMM: 1


def run_rounds(entries: List[Entry], rounds: int, warmup: int, iters: int,
               device='cpu', verbose: bool = True,
               min_time: Optional[float] = None,
               progress=None) -> Dict[str, List[float]]:
    """Seconds per call of every entry, one value per round: the median of
    that round's timed calls (``iters`` of them, or as many as fill
    ``min_time`` seconds). ``progress``: an object with ``update()``
    (mmengine's ProgressBar), called once per entry and round."""
    device = torch.device(device)
    seconds = {entry.key: [] for entry in entries}
    for round_idx in range(rounds):
        shift = round_idx % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            times = time_forward(entry.forward, device, warmup, iters,
                                 min_time)
            per_call = statistics.median(times)
            seconds[entry.key].append(per_call)
            if progress is not None:
                progress.update()
            if verbose:
                print_log(
                    f'round {round_idx + 1}/{rounds}  {entry.key:<52} '
                    f'{entry.items_per_call / per_call:9.1f} /s  '
                    f'({per_call * 1e3:.1f} ms/call, {len(times)} calls)',
                    logger='current')
    return seconds
