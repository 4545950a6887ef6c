#!/usr/bin/env python
"""From a trained checkpoint to the fastest deployment that keeps its
accuracy, in one command.

Fuses and exports the model; builds every serving this machine can run
(torch fp32 eager / channels_last / jit, ONNX Runtime fp32 and INT8,
OpenVINO fp32, bf16 when the CPU has it, INT8); evaluates each with the
config's own evaluator on the val split (INT8 calibrated on the train
split; NNCF accuracy control when plain INT8 misses the bound); times all
in alternating rounds with the precision ceilings of this CPU; ships the
fastest within --max-drop points of the fp32 model to OUT_DIR with
report.json, report.md, speed_vs_accuracy.png and model_card.md.

Exit status: 0 a serving met the bound, 1 none did (the report is still
written and names the closest), 2 bad input (nothing written).

Examples::

    python tools/deploy.py configs/demo/repvgg-tiny_digits.py \\
        work_dirs/digits_demo/epoch_30.pth work_dirs/digits_deploy
    python tools/deploy.py configs/repvgg-a0_8xb32_in1k.py random \\
        work_dirs/a0_speed --speed-only --batch-size 32
"""
import argparse

from harness.cli import ToolParser, add_choice_args, add_model_args, run_tool


def parse_args(argv=None):
    parser = ToolParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='classifier or segmentor config')
    parser.add_argument('checkpoint', help='training- or deploy-form '
                        'checkpoint; "random" (with --speed-only): the '
                        'initial weights')
    parser.add_argument('out_dir', help='output folder (new, empty, or an '
                        'earlier output of this tool)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='batch size of the timing (default 32)')
    parser.add_argument('--servings', nargs='+', metavar='NAME',
                        help='only these servings (torch, the reference, '
                        'and torch-train, the baseline, always run): '
                        'torch-channels_last torch-jit onnxruntime openvino '
                        'openvino-bf16 onnxruntime-int8 openvino-int8')
    parser.add_argument('--rounds', type=int, default=5,
                        help='alternating timing rounds (default 5)')
    parser.add_argument('--calib', type=int, default=300,
                        help='calibration images from the train split '
                        '(default 300)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of every serving (default: '
                        'torch\'s)')
    parser.add_argument('--speed-only', action='store_true',
                        help='no evaluation: time the servings only '
                        '(random weights, no dataset needed)')
    add_choice_args(parser)
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # inside run_tool: without the [deploy] extra, one `error:` line
    from harness.deploy_report import format_table, write_documents
    from repvgg_mm.apis import deploy_model
    report = deploy_model(
        args.config, args.checkpoint, args.out_dir, max_drop=args.max_drop,
        batch_size=args.batch_size, servings=args.servings,
        rounds=args.rounds, min_time=args.min_time, calib=args.calib,
        speed_only=args.speed_only, threads=args.threads,
        cfg_options=args.cfg_options, unsafe_load=args.unsafe_load,
        documents=write_documents)
    print(format_table(report))
    if report['met']:
        print(f'chosen: {report["chosen"]}; wrote {args.out_dir} '
              f'({", ".join(report["shipped"])}, report.json, report.md, '
              f'model_card.md, speed_vs_accuracy.png)')
        return 0
    print(f'no serving is within {args.max_drop:g} points of the fp32 '
          f'model; closest: {report["closest"]}. The report is in '
          f'{args.out_dir}.')
    return 1


if __name__ == '__main__':
    run_tool(main)
