#!/usr/bin/env python
"""Figure-1-style plot: accuracy vs images/s from benchmark JSON records.

Speeds come from ``tools/benchmark_fps.py --json`` records (one or more);
accuracies from the paper's published figures
(``repvgg_mm/benchmark/paper_results.json``), overridden by ``--accuracy``
(your own results). Example::

    python tools/plot_speed_accuracy.py work_dirs/fps_cls.json \\
        --out docs/speed_accuracy.png
"""
import argparse
import sys

from harness.cli import ToolParser, run_tool


def parse_args(argv=None):
    parser = ToolParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('records', nargs='+',
                        help='JSON files written by benchmark_fps.py --json')
    parser.add_argument('--out', default='speed_accuracy.png',
                        help='PNG to write (default: speed_accuracy.png)')
    parser.add_argument('--accuracy', metavar='JSON',
                        help='your accuracies, {"RepVGG-A0": 72.9, ...}; '
                        'they replace the paper\'s for those models')
    parser.add_argument('--task', default='classification',
                        choices=['classification', 'segmentation'],
                        help='top-1 of classifiers or mIoU of segmentors')
    parser.add_argument('--form', default='deploy',
                        choices=['deploy', 'best', 'train'],
                        help='which timing per model: the deployed form '
                        'with the run\'s default serving, the fastest '
                        'deployed serving (--best runs), or the training form')
    parser.add_argument('--title', help='plot title (default: from the '
                        'records: device and protocol)')
    parser.add_argument('--no-paper-panel', action='store_true',
                        help='do not draw the paper\'s figure beside it')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from harness.benchmark.plot import plot_records

    points = plot_records(
        args.records, args.out, accuracy_file=args.accuracy, task=args.task,
        form=args.form, title=args.title,
        paper_panel=not args.no_paper_panel,
        warn=lambda msg: print(f'note: {msg}', file=sys.stderr))
    for p in sorted(points, key=lambda p: -p.speed):
        print(f'{p.label:<28} {p.speed:10.1f} images/s  {p.accuracy:6.2f}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    run_tool(main)
