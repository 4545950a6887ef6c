"""Timing rounds that alternate between everything under test: each round
times every entry once, the order rotated by one entry per round, so drift
of the machine hits all entries alike; ratios are then taken round by
round (:func:`paired_ratios`)."""
import statistics
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import torch
from mmengine.logging import print_log


@torch.inference_mode()
def time_forward(forward: Callable[[], object], device='cpu', warmup: int = 2,
                 iters: int = 5,
                 min_time: Optional[float] = None) -> List[float]:
    """Seconds per timed call of ``forward()`` after ``warmup`` calls, CUDA
    synchronised; with ``min_time``, calls go on until they add up to it."""
    cuda = torch.device(device).type == 'cuda'
    for _ in range(warmup):
        forward()
    times: List[float] = []
    while len(times) < iters or sum(times) < (min_time or 0):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        forward()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


class Entry(NamedTuple):
    key: str  #: unique label, e.g. ``'repvgg-a0 / deploy / channels_last'``
    forward: Callable[[], object]
    items_per_call: int  #: images per call (batch size); GEMM: 1


def run_rounds(entries: List[Entry], rounds: int, warmup: int, iters: int,
               device='cpu', verbose: bool = True,
               min_time: Optional[float] = None,
               progress=None) -> Dict[str, List[float]]:
    """Seconds per call of every entry, one value (the median) per round;
    ``progress.update()`` is called once per entry and round."""
    seconds: Dict[str, List[float]] = {entry.key: [] for entry in entries}
    for index in range(rounds):
        shift = index % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            times = time_forward(entry.forward, device, warmup, iters,
                                 min_time)
            per_call = statistics.median(times)
            seconds[entry.key].append(per_call)
            if progress is not None:
                progress.update()
            if verbose:
                print_log(
                    f'round {index + 1}/{rounds}  {entry.key:<52} '
                    f'{entry.items_per_call / per_call:9.1f} /s  '
                    f'({per_call * 1e3:.1f} ms/call, {len(times)} calls)',
                    logger='current')
    return seconds


def summary(values: Sequence[float]) -> Dict[str, float]:
    """Median, min, max, ``spread_pct`` (half-range, % of median), values."""
    values = [float(v) for v in values]
    median = statistics.median(values)
    low, high = min(values), max(values)
    return dict(median=median, min=low, max=high,
                spread_pct=100 * (high - low) / 2 / median if median else 0,
                values=values)


def paired_ratios(numerators: Sequence[float],
                  denominators: Sequence[float]) -> Dict[str, float]:
    """Round-by-round ratios: drift that hits one round hits both sides."""
    if len(numerators) != len(denominators):
        raise ValueError('paired ratios need the same number of rounds')
    return summary([a / b for a, b in zip(numerators, denominators)])


def ranges_overlap(first: dict, second: dict) -> bool:
    """The rounds cannot rank the two (*tied*): their ranges overlap."""
    return first['min'] <= second['max'] and second['min'] <= first['max']
