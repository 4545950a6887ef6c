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
import os
import sys

from repvgg_mm.utils.cli import ToolError, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
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


def _default_title(record_path: str, form: str) -> str:
    import json
    with open(record_path) as f:
        record = json.load(f)
    host = record.get('host', {})
    device = host.get('gpu') or host.get('cpu') or host.get('device', '?')
    threads = host.get('torch_threads')
    first = record['models'][0]
    load = host.get('load_avg_start')
    return (f'{device}' + (f', {threads} threads' if threads else '') +
            f'; batch {first["batch_size"]}, '
            f'{first["shape"][0]}x{first["shape"][1]}, {form} form' +
            (f'\n(load average {load[0]:.1f} at the start)' if load else ''))


def main(argv=None):
    args = parse_args(argv)
    from repvgg_mm.benchmark.paper import accuracy_table
    from repvgg_mm.benchmark.plot import load_points, plot_speed_accuracy

    for path in args.records + ([args.accuracy] if args.accuracy else []):
        if not os.path.isfile(path):
            raise ToolError(f'"{path}" does not exist.')
    if not args.out.lower().endswith('.png'):
        raise ToolError(f'--out {args.out}: the plot is written as PNG; '
                        f'give a path ending in .png.')
    try:
        accuracy = accuracy_table(args.task, args.accuracy)
        points = load_points(
            args.records, accuracy, args.task, args.form,
            warn=lambda msg: print(f'note: {msg}', file=sys.stderr))
        title = args.title or _default_title(args.records[0], args.form)
    except (ValueError, KeyError) as exc:
        raise ToolError(f'cannot read the inputs: {exc}') from None
    except UnicodeDecodeError:
        raise ToolError('an input is not a JSON text file.') from None
    if not points:
        raise ToolError(
            f'no model in {args.records} has both a "{args.form}" timing and '
            f'an accuracy for task {args.task}; add accuracies with '
            f'--accuracy or check --task/--form.')
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    plot_speed_accuracy(points, args.out, args.task, title,
                        paper_panel=not args.no_paper_panel,
                        accuracy=accuracy)
    for p in sorted(points, key=lambda p: -p.speed):
        print(f'{p.label:<28} {p.speed:10.1f} images/s  {p.accuracy:6.2f}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    run_tool(main)
