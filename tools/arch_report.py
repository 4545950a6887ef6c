#!/usr/bin/env python
"""Parameters, MACs and conversion error of every RepVGG architecture.

    python tools/arch_report.py [--archs a0 b1] [--json OUT] [--no-macs]

For each arch: train-form and deploy-form parameters of a 1000-class
ImageClassifier, deploy MACs at 224x224 (mmengine's FlopAnalyzer), the paper's
figures, and the worst relative error between the converted and the training
backbone (all four stage outputs, random BN statistics, eval mode, fp32,
input 2x3x64x48).
"""
import argparse
import json
import sys
import time

import torch

from repvgg_mm import ARCH_SETTINGS, RepVGGMM
from repvgg_mm.benchmark.arch_figures import arch_figures
from repvgg_mm.benchmark.paper import paper_arch_figures
from repvgg_mm.utils.cli import ToolError, run_tool
from repvgg_mm.utils.verify import conversion_errors


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=list(ARCH_SETTINGS),
                        help='architectures (default: all 14)')
    parser.add_argument('--json', help='also write the rows as JSON here')
    parser.add_argument('--no-macs', action='store_true',
                        help='skip MAC counting (faster)')
    return parser.parse_args(argv)


def fmt(value, spec):
    return '-' if value is None else format(value, spec)


def main(argv=None):
    args = parse_args(argv)
    unknown = [a for a in args.archs if a.lower() not in ARCH_SETTINGS]
    if unknown:
        raise ToolError(f'unknown arch(s) {unknown}; valid: '
                        f'{", ".join(ARCH_SETTINGS)}')
    torch.manual_seed(0)
    rows = []
    header = ('| arch | train params (M) | deploy params (M) | paper params '
              '(M) | deploy MACs (G) | paper MACs (G) | worst rel. error |')
    print(header)
    print('|' + '---|' * 7)
    for arch in (a.lower() for a in args.archs):
        start = time.time()
        row = arch_figures(arch, with_macs=not args.no_macs)
        errors = conversion_errors(
            RepVGGMM(arch, out_indices=(0, 1, 2, 3)),
            torch.randn(2, 3, 64, 48), seed=1)
        row['worst_rel_error'] = max(rel for _, rel in errors)
        paper_params, paper_macs = paper_arch_figures().get(
            arch, (None, None))
        row.update(paper_params_m=paper_params, paper_macs_g=paper_macs)
        rows.append(row)
        print(f'| {arch} | {row["train_params_m"]:.2f} | '
              f'{row["deploy_params_m"]:.2f} | {fmt(paper_params, ".2f")} | '
              f'{fmt(row["deploy_macs_g"], ".2f")} | {fmt(paper_macs, ".1f")} '
              f'| {row["worst_rel_error"]:.1e} |', flush=True)
        print(f'  ({arch}: {time.time() - start:.1f} s)', file=sys.stderr)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == '__main__':
    run_tool(main)
