"""Timing the deploy job's servings and ceilings in the same alternating
rounds, and the per-serving speed figures of its report."""
from typing import Dict, List, Optional

import numpy as np

from .ceiling import Ceiling, ceilings
from .rounds import Entry, run_rounds
from .servings import Serving
from .stats import paired_ratios, summary

CEILING_KEY = 'ceiling/{}'


def time_servings(servings: Dict[str, Serving], batch: np.ndarray,
                  stack: List[Ceiling], rounds: int, min_time: float,
                  progress: bool = True) -> Dict[str, List[float]]:
    """Seconds per batch of every serving and ceiling stack, one value
    per round (each timed for at least ``min_time`` s per round)."""
    from mmengine.logging import print_log
    from mmengine.utils import ProgressBar
    entries = [Entry(name, (lambda s=s: s.run(batch)), len(batch))
               for name, s in servings.items()]
    entries += [Entry(CEILING_KEY.format(c.precision), c.forward,
                      c.shape[0]) for c in stack]
    print_log(f'timing {len(entries)} entries x {rounds} rounds (at least '
              f'{min_time:g} s each per round, alternating)',
              logger='current')
    bar = ProgressBar(len(entries) * rounds) if progress else None
    return run_rounds(entries, rounds, warmup=1, iters=2, verbose=False,
                      min_time=min_time, progress=bar)


def speed_figures(rows: List[dict], seconds: Dict[str, List[float]],
                  batch_size: int, macs_per_image: int, baseline: str,
                  stack: List[Ceiling]) -> Dict[str, dict]:
    """Fill each timed row's ``images_per_s``, ``ms_per_batch``,
    ``vs_baseline`` (paired by round), ``gmacs_per_s`` and
    ``pct_of_ceiling``; return the ceilings per precision."""
    rates = {name: [batch_size / s for s in values]
             for name, values in seconds.items()}
    base = rates.get(baseline)
    for row in rows:
        mine = rates.get(row['name'])
        if mine is None:
            continue
        row['images_per_s'] = summary(mine)
        row['ms_per_batch'] = summary([1e3 * s for s in
                                       seconds[row['name']]])
        if base:
            row['vs_baseline'] = paired_ratios(mine, base)
        row['gmacs_per_s'] = summary([r * macs_per_image / 1e9
                                      for r in mine])
    stack_rates = {c.precision: [c.macs_per_call / s for s in seconds[
        CEILING_KEY.format(c.precision)]] for c in stack}
    serving_rates = {row['name']: (row['precision'], [
        r * macs_per_image for r in rates[row['name']]])
        for row in rows if row['name'] in rates}
    found = ceilings(stack_rates, serving_rates)
    for row in rows:
        ceiling: Optional[dict] = found.get(row['precision'])
        if ceiling and row.get('images_per_s'):
            row['pct_of_ceiling'] = 100 * row['images_per_s']['median'] * \
                macs_per_image / ceiling['macs_per_s']
    return found
