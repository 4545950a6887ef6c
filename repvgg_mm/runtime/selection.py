"""Which serving to ship: the fastest whose metric stays within the bound.

Each row is a serving's record (``name``, ``metric``, ``drop``,
``images_per_s`` summary or an ``error``). :func:`select` marks every row
with ``status`` (``chosen``, ``tied``, ``slower``, ``rejected``,
``baseline``, ``failed``) and a one-line ``reason``.
"""
from typing import List, Optional, Sequence

from .stats import ranges_overlap

#: slack for the drop comparison (metrics are sums of floats)
EPS = 1e-9


def _within(row: dict, max_drop: Optional[float]) -> bool:
    return row.get('drop') is None or max_drop is None or (
        row['drop'] <= max_drop + EPS)


def select(rows: List[dict], max_drop: Optional[float],
           candidates: Sequence[str]) -> dict:
    """Mark ``rows`` in place and return ``dict(chosen=name or None,
    met=bool, closest=name or None, tied=[names])``.

    Only ``candidates`` may be chosen (the others are the speed baseline
    and the accuracy reference); ``max_drop`` None: no accuracy bound
    (speed only)."""
    timed = [r for r in rows if r.get('images_per_s') and
             r['name'] in candidates]
    eligible = [r for r in timed if _within(r, max_drop)]
    chosen = max(eligible, key=lambda r: r['images_per_s']['median'],
                 default=None)
    tied = []
    for row in rows:
        if row['name'] not in candidates:
            row.update(status='baseline', reason='the training form: the '
                       'speed baseline' if row['name'] == 'torch-train' else
                       'the fp32 reference (not among --servings)')
        elif row.get('error'):
            row.update(status='failed', reason=f'could not run: '
                       f'{row["error"]}')
        elif not row.get('images_per_s'):
            row.update(status='failed', reason='not timed')
        elif not _within(row, max_drop):
            row.update(status='rejected', reason=f'drop {row["drop"]:.2f} > '
                       f'{max_drop:g} points')
        elif row is chosen:
            row.update(status='chosen', reason='the fastest within the '
                       'bound')
        elif ranges_overlap(row['images_per_s'], chosen['images_per_s']):
            tied.append(row['name'])
            row.update(status='tied', reason=f'tied with {chosen["name"]}: '
                       f'the round ranges overlap, the rounds cannot rank '
                       f'them')
        else:
            ratio = row['images_per_s']['median'] / \
                chosen['images_per_s']['median']
            row.update(status='slower', reason=f'slower: {ratio:.2f}x the '
                       f'speed of {chosen["name"]}')
    closest = None
    if chosen is None:
        measured = [r for r in timed if r.get('drop') is not None]
        best = min(measured, key=lambda r: (r['drop'],
                                            -r['images_per_s']['median']),
                   default=None)
        closest = best and best['name']
    if chosen is not None and tied:
        chosen['reason'] += (f' (tied with {", ".join(tied)}: the same speed '
                             f'within the rounds\' spread)')
    return dict(chosen=chosen and chosen['name'], met=chosen is not None,
                closest=closest, tied=tied)
