"""The yardstick of ``% of ceiling``: the runtime's own best rate per
precision on a stack of 3x3 convs at the first model's dominant layer
shape (:mod:`repvgg_mm.runtime.ceiling`), timed in the same rounds as the
servings. CPU only (OpenVINO); not taken on a GPU."""
import tempfile
from typing import Dict, List, Optional

import torch

from repvgg_mm.runtime.rounds import Entry

#: serving-name parts -> the precision whose ceiling applies
_PRECISION_PARTS = (('int8', 'int8'), ('bf16', 'bf16'), ('fp16', 'fp16'))


def precision_of(serving: str) -> str:
    """``'openvino-int8'`` -> ``'int8'``; ``'channels_last+bf16'`` ->
    ``'bf16'``; everything else fp32."""
    for part, precision in _PRECISION_PARTS:
        if part in serving:
            return precision
    return 'fp32'


def _key(precision: str) -> str:
    return f'ceiling / {precision}'


def ceiling_entries(model: torch.nn.Module, example: torch.Tensor,
                    batch: int, servings: List[str], work: str,
                    threads: Optional[int] = None) -> tuple:
    """``(entries, shape)``: the conv stack at ``model``'s dominant 3x3
    shape for each precision of ``servings`` (fp16 has none on a CPU)."""
    from repvgg_mm.runtime.ceiling import ceiling_entries as stacks
    from repvgg_mm.runtime.ceiling import dominant_shape, layers_of
    shape = dominant_shape(layers_of(model, example))
    wanted = [p for p in ('fp32', 'bf16', 'int8')
              if p in {precision_of(s) for s in servings}]
    from repvgg_mm.utils.cpu import supports_bf16
    if not supports_bf16() and 'bf16' in wanted:
        wanted.remove('bf16')
    found = stacks(shape, batch, wanted, work,
                   threads or torch.get_num_threads())
    entries = [Entry(_key(c.precision), c.forward, 1) for c in found]
    return entries, shape, {c.precision: c.macs_per_call for c in found}


def summarise(record: dict, seconds: Dict[str, List[float]],
              macs_per_call: Dict[str, int], shape) -> dict:
    """Add ``pct_of_ceiling`` to every timed row of ``record`` (all models)
    and return the ceilings (raised to a serving's rate where it beat the
    stack, so no row is above 100 %)."""
    from repvgg_mm.runtime.ceiling import ceilings
    stack = {p: [macs / s for s in seconds[_key(p)]]
             for p, macs in macs_per_call.items()}
    servings = {}
    for m in record['models']:
        for row in m['rows']:
            if 'images_per_s' in row:
                servings[f'{m["name"]} {row["form"]}/{row["serving"]}'] = (
                    precision_of(row['serving']), [
                        r * m['macs'][row['form']]
                        for r in row['images_per_s']['values']])
    found = ceilings(stack, servings)
    for m in record['models']:
        for row in m['rows']:
            ceiling = found.get(precision_of(row['serving']))
            if ceiling and 'images_per_s' in row:
                row['pct_of_ceiling'] = 100 * row['images_per_s'][
                    'median'] * m['macs'][row['form']] / ceiling['macs_per_s']
    return dict(shape=list(shape), per_precision=found)


def work_dir():
    """A temporary folder for the stack's graphs."""
    return tempfile.TemporaryDirectory(prefix='repvgg-ceiling-')
