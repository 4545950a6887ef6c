"""Human-readable table and JSON file of a benchmark record."""
from typing import Dict, Optional

from repvgg_mm.io.atomic import atomic_write_json


def format_summary(s: Dict[str, float], fmt: Optional[str] = None) -> str:
    """``median ±spread%``; by default 1 decimal, 3 digits below 10."""
    fmt = fmt or ('.3g' if abs(s['median']) < 10 else '.1f')
    return f'{s["median"]:{fmt}} ±{s["spread_pct"]:.0f}%'


def _fmt_ratio(s) -> str:
    return f'{s["median"]:.2f}x ±{s["spread_pct"]:.0f}%' if s else '-'


def format_table(record: dict, markdown: bool = False) -> str:
    """One row per timed (model, form, serving), by prettytable."""
    from prettytable import PrettyTable, TableStyle
    table = PrettyTable(['model', 'form', 'serving', 'images/s', 'ms/batch',
                         'vs train', '% ceiling', 'rel. err', 'params(M)',
                         'MACs(G)'])
    table.align = 'l'
    for m in record['models']:
        for row in m['rows']:
            if 'images_per_s' not in row:
                table.add_row([m['name'], row['form'], row['serving'], 'n/a',
                               '-', '-', '-', '-', '-', '-'])
                continue
            fraction = row.get('pct_of_ceiling')
            table.add_row([
                m['name'], row['form'], row['serving'],
                format_summary(row['images_per_s']),
                f'{row["ms_per_batch"]["median"]:.1f}',
                _fmt_ratio(row.get('speedup_vs_train')),
                (f'{fraction:.0f}%' if fraction else '-'),
                (f'{row["output_rel_err"]:.1e}'
                 if row.get('output_rel_err') is not None else '-'),
                f'{m["params"][row["form"]] / 1e6:.2f}',
                f'{m["macs"][row["form"]] / 1e9:.3g}'])
    table.set_style(TableStyle.MARKDOWN if markdown else
                    TableStyle.PLAIN_COLUMNS)
    return table.get_string()


def format_report(record: dict, markdown: bool = False) -> str:
    host, settings = record['host'], record['settings']
    out = [f'device: {host.get("gpu") or host.get("cpu")} ({host["device"]}, '
           f'{host["torch_threads"]} threads), torch {host["torch"]}; '
           f'{settings["rounds"]} rounds x ({settings["warmup"]} warm-up + '
           f'{settings["iters"]} timed) calls; median ±half-range over rounds',
           '', format_table(record, markdown)]
    for m in record['models']:
        unit = f'batch {m["batch_size"]}, {m["shape"][0]}x{m["shape"][1]}'
        best = m.get('best')
        serving_err = max((r['output_rel_err'] for r in m['rows']
                           if r.get('output_rel_err') is not None),
                          default=0)
        out.append(f'{m["name"]}: {unit}; deployed form: {m["deploy_steps"]}'
                   f' (max rel. output error vs training form '
                   f'{m["max_rel_err"]:.1e}, of the servings vs eager '
                   f'{serving_err:.1e})'
                   + (f'; fastest deployed serving: {best["serving"]}'
                      if best else ''))
        for r in m['rows']:
            if r.get('skipped'):
                out.append(f'  {r["skipped"]}')
            if r.get('error'):
                out.append(f'  {r["form"]}/{r["serving"]} could not run: '
                           f'{r["error"]}')
    if record.get('ceiling'):
        c = record['ceiling']
        for precision, ceiling in c['per_precision'].items():
            rate = ceiling['macs_per_s'] / 1e9
            note = f'; {ceiling["note"]}' if ceiling.get('note') else ''
            out.append(f'ceiling {precision}: {rate:.1f} GMAC/s (OpenVINO, '
                       f'3x3 conv stack at C, H, W = {c["shape"]}{note})')
        out.append('"% ceiling" = model MACs x images/s / the ceiling of '
                   'the serving\'s precision (never above 100 %)')
    if record['comparisons']:
        out += ['', 'comparisons (ratios of images/s, paired round by round):']
        for c in record['comparisons']:
            r = c['ratio']
            out.append(f'{"- " if markdown else "  "}'
                       f'{c["numerator"]}  /  {c["denominator"]}:  '
                       f'{r["median"]:.2f}x (rounds {r["min"]:.2f}..'
                       f'{r["max"]:.2f})  [{c["kind"]}]')
    if host.get('cpu_features'):
        feats = host['cpu_features']
        out.append(f'CPU features: {", ".join(feats["flags"]) or "none"} '
                   f'(torch: {feats["torch_capability"]}); "rel. err": max '
                   f'|d| / max |y| of the serving vs the fp32 eager form')
    if 'load_avg_start' in host:
        out.append(f'\nload average (1, 5, 15 min): start '
                   f'{host["load_avg_start"]}, end {host.get("load_avg_end")}')
    return '\n'.join(out)


def write_json(record: dict, path: str) -> None:
    """Write atomically: an interrupted run leaves no half-written file."""
    atomic_write_json(record, path, indent=1)
