"""Parameters, MACs and conversion error of every RepVGG architecture.

    python tools/arch_report.py [--archs a0 b1] [--json OUT] [--no-macs]

For each arch: train-form and deploy-form parameters of a 1000-class
ImageClassifier, deploy MACs at 224x224 (mmengine's FlopAnalyzer), the paper's
figures, and the worst relative error between the converted and the training
backbone (all four stage outputs, random BN statistics, eval mode, fp32,
input 2x3x64x48).
"""

from harness.benchmark.arch_figures import arch_report
from harness.cli import ToolParser, run_tool
from repvgg_mm import ARCH_SETTINGS
from repvgg_mm.io.atomic import atomic_write_json


def parse_args(argv):
    parser = ToolParser(description=__doc__.split('\n')[0])
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
    print('| arch | train params (M) | deploy params (M) | paper params (M) '
          '| deploy MACs (G) | paper MACs (G) | worst rel. error |')
    print('|' + '---|' * 7)
    rows = []
    for row in arch_report(args.archs, with_macs=not args.no_macs):
        rows.append(row)
        print(f'| {row["arch"]} | {row["train_params_m"]:.2f} | '
              f'{row["deploy_params_m"]:.2f} | '
              f'{fmt(row["paper_params_m"], ".2f")} | '
              f'{fmt(row["deploy_macs_g"], ".2f")} | '
              f'{fmt(row["paper_macs_g"], ".1f")} | '
              f'{row["worst_rel_error"]:.1e} |', flush=True)
    if args.json:
        atomic_write_json(rows, args.json)
    return 0


if __name__ == '__main__':
    run_tool(main)
