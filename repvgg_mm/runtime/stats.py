"""Summaries of repeated measurements (median and spread over rounds,
paired ratios, whether two ranges can be ranked) and the one SQNR formula
of the project."""
import math
import statistics
from typing import Dict, Sequence

import numpy as np


def summary(values: Sequence[float]) -> Dict[str, float]:
    """``median``, ``min``, ``max``, the half-range in % of the median and
    the ``values`` themselves."""
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


def ranges_overlap(first: Dict[str, float], second: Dict[str, float]
                   ) -> bool:
    """Whether the round ranges (``min``..``max``) of two summaries overlap:
    then the rounds cannot rank the two (they are *tied*)."""
    return first['min'] <= second['max'] and second['min'] <= first['max']


def format_summary(s: Dict[str, float], fmt: str = None) -> str:
    """``median ±spread%``; by default 1 decimal, 3 digits below 10."""
    if fmt is None:
        fmt = '.3g' if abs(s['median']) < 10 else '.1f'
    return f'{s["median"]:{fmt}} ±{s["spread_pct"]:.0f}%'


def sqnr_from_energies(signal: float, noise: float) -> float:
    """Signal-to-quantization-noise ratio in dB from the summed squares of
    the reference (``signal``) and of the difference (``noise``): 10
    log10(signal / noise); inf when noise is 0."""
    if noise == 0:
        return math.inf
    return float(10 * math.log10(signal / noise)) if signal > 0 else -math.inf


def sqnr_db(reference, approx) -> float:
    """SQNR in dB of ``approx`` against ``reference`` (arrays or
    tensors): 10 log10(|x|^2 / |x - y|^2), inf when equal."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(((reference - np.asarray(approx, np.float64))**2).sum())
    return sqnr_from_energies(float((reference**2).sum()), noise)
