"""Per-layer INT8 statistics of deploy-form models, side by side.

    python tools/int8_analysis.py \
        --model RepVGG CONFIG CHECKPOINT --model QARepVGG CONFIG CHECKPOINT \
        [--calib N] [--json OUT.json] [--png OUT.png]

For each conv / linear layer: range, std and max|w|/std of the fused
kernel, the kernel's own INT8 SQNR (per channel / per tensor), and the SQNR
of the layer's output with INT8 weights (per channel) and uint8 inputs (per
tensor, min-max over N train images), isolated and cumulative, on the val
split; see repvgg_mm/benchmark/int8_analysis.py.
"""

from harness.benchmark.int8_analysis import (analyse_checkpoint, format_table,
                                             plot)
from harness.cli import ToolError, ToolParser, run_tool
from repvgg_mm.io.atomic import atomic_write_json
from repvgg_mm.io.output_guard import Output, guard_outputs


def parse_args(argv=None):
    parser = ToolParser(
        description='Per-layer INT8 statistics (kernel range/std, SQNR).')
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
                        help='a model to analyse (repeat to compare)')
    parser.add_argument('--calib', type=int, default=300,
                        help='calibration images of the train split')
    parser.add_argument('--json', help='write the statistics here')
    parser.add_argument('--png', help='write the plot here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = [name for name, _, _ in args.model]
    if len(set(names)) != len(names):
        raise ToolError(f'--model names must differ, got {names}.')
    guard_outputs([Output(p, w) for p, w in ((args.json, '--json'),
                                             (args.png, '--png')) if p],
                  [(f'{n} {k}', p) for n, c, ck in args.model
                   for k, p in (('CONFIG', c), ('CHECKPOINT', ck))])
    results = {name: analyse_checkpoint(config, checkpoint, args.calib)
               for name, config, checkpoint in args.model}
    print(format_table(results))
    if args.json:
        atomic_write_json(results, args.json)
        print(f'wrote {args.json}')
    if args.png:
        plot(results, args.png)
        print(f'wrote {args.png}')


if __name__ == '__main__':
    run_tool(main)
