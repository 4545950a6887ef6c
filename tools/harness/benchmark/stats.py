"""Summaries of repeated measurements: median and spread over rounds."""
import statistics
from typing import Dict, Sequence


def summary(values: Sequence[float]) -> Dict[str, float]:
    """``median``, ``min``, ``max`` and the half-range in % of the median."""
    values = list(values)
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


def format_summary(s: Dict[str, float], fmt: str = None) -> str:
    """``median ±spread%``; by default 1 decimal, 3 digits below 10."""
    if fmt is None:
        fmt = '.3g' if abs(s['median']) < 10 else '.1f'
    return f'{s["median"]:{fmt}} ±{s["spread_pct"]:.0f}%'
