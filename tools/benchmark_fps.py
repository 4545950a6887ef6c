#!/usr/bin/env python
"""Images/s of a model's training form vs its deployed (converted) form.

Both forms are timed in the same run, alternating round by round, with the
paper's protocol by default (classification: batch 128, fp32, 224x224;
segmentation: batch 16, 713x713; detection, which the paper does not time:
batch 1, 800x1333, mmdet's COCO test scale). Baselines (``--baseline``)
are timed in the same rounds; ``--best`` also tries every serving option on
the deployed forms and reports the fastest.

Examples::

    python tools/benchmark_fps.py configs/repvgg-a0_8xb32_in1k.py
    python tools/benchmark_fps.py configs/repvgg-a0_8xb32_in1k.py a0.pth \\
        --baseline mmpretrain::resnet/resnet18_8xb32_in1k.py timm:repvgg_a0 \\
        --best --json work_dirs/fps_a0.json
    python tools/benchmark_fps.py configs/retinanet_repvgg-a0_fpn_1x_coco.py \\
        --baseline configs/retinanet_r50_fpn_1x_coco.py
"""
import argparse
import sys

from harness.cli import ToolParser, add_model_args, run_tool


def _int_at_least(minimum: int):

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected an integer, got "{text}"') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'must be >= {minimum}, got {value}')
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def parse_args(argv=None):
    parser = ToolParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='config file (or pkg::path/to/cfg.py, '
                        'or timm:<model>) of the model under test')
    parser.add_argument('checkpoint', nargs='?',
                        help='weights of that model (training form), loaded '
                        'strictly; random weights otherwise')
    parser.add_argument('--baseline', nargs='+', default=[], metavar='SRC',
                        help='more models timed in the same rounds: configs, '
                        'pkg::configs or timm:<model>')
    parser.add_argument('--batch-size', type=positive_int,
                        help='default: 128 (classification), 16 '
                        '(segmentation), 1 (detection)')
    parser.add_argument('--shape', type=positive_int, nargs='+',
                        metavar='N', help='input H W (or one size); default '
                        '224 224 (classification), 713 713 (segmentation), '
                        '800 1333 (detection)')
    parser.add_argument('--warmup', type=non_negative_int, default=2,
                        help='untimed calls before the timed ones, per round '
                        '(each entry already ran once when it was prepared)')
    parser.add_argument('--iters', type=positive_int, default=5,
                        help='timed calls per round (their median counts)')
    parser.add_argument('--rounds', type=positive_int, default=3,
                        help='rounds, alternating all entries')
    parser.add_argument('--device', default='cpu',
                        help='cpu, cuda, cuda:1, ... (default: cpu)')
    parser.add_argument('--threads', type=positive_int,
                        help='torch.set_num_threads (CPU); default: torch\'s')
    parser.add_argument('--channels-last', action='store_true',
                        help='NHWC memory format for both forms')
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument('--compile', action='store_true',
                        help='torch.compile both forms')
    engine.add_argument('--jit', action='store_true',
                        help='TorchScript trace + freeze + '
                        'optimize_for_inference for both forms')
    parser.add_argument('--amp', choices=['fp16', 'bf16'],
                        help='autocast precision (the paper uses fp32)')
    parser.add_argument('--best', action='store_true',
                        help='also time the deployed forms with every '
                        'serving candidate and report the fastest')
    parser.add_argument('--candidates', nargs='+', metavar='SERVING',
                        help='servings tried by --best, e.g. eager '
                        'channels_last channels_last+jit compile 1threads')
    parser.add_argument('--no-ceiling', '--no-gemm', action='store_true',
                        dest='no_ceiling',
                        help='skip the precision ceilings (a stack of 3x3 '
                        'convs at the model\'s dominant shape in OpenVINO '
                        'fp32 / bf16 / int8; --no-gemm: the earlier name)')
    parser.add_argument('--json', metavar='OUT', help='write the record here')
    parser.add_argument('--markdown', action='store_true',
                        help='print the table as Markdown')
    add_model_args(parser, 'CHECKPOINT')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from harness.benchmark.api import benchmark
    from harness.benchmark.report import format_report

    record = benchmark(
        args.config, args.checkpoint, baselines=args.baseline,
        batch_size=args.batch_size, shape=args.shape, warmup=args.warmup,
        iters=args.iters, rounds=args.rounds, device=args.device,
        threads=args.threads, channels_last=args.channels_last,
        jit=args.jit, compile=args.compile, amp=args.amp, best=args.best,
        candidates=args.candidates, ceiling=not args.no_ceiling,
        cfg_options=args.cfg_options, json_out=args.json,
        unsafe_load=args.unsafe_load,
        command=' '.join(['python', 'tools/benchmark_fps.py'] + list(
            sys.argv[1:] if argv is None else argv)))
    print(format_report(record, args.markdown))
    if args.json:
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    run_tool(main)
