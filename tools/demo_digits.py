"""The main job: RepVGG on real handwritten digits, on CPU, in minutes.

    python tools/demo_digits.py [--work-dir work_dirs/digits_demo]
        [--epochs N] [--data-root data/digits] [--threads 1]
        [--timing-batch 128] [--timing-rounds 3] [--min-time 1.0]
        [--max-drop 0.5] [--config CONFIG] [--cfg-options KEY=VALUE ...]

Writes the scikit-learn digits as an image folder (if missing), trains the
multi-branch RepVGG of configs/demo/repvgg-tiny_digits.py, tests it, tests
its deploy form (written by SwitchToDeployHook), checks that every
prediction is identical, runs tools/deploy.py's job on the trained model
(every serving evaluated and timed, the fastest within --max-drop shipped
to <work-dir>/deploy) and writes <work-dir>/report.json.
"""

import torch

from harness.cli import (ToolError, ToolParser, add_choice_args,
                         add_model_args, run_tool)
from harness.demos.digits_demo import DEFAULT_CONFIG, run_digits_demo


def parse_args(argv=None):
    parser = ToolParser(
        description='Train a small RepVGG on the scikit-learn digits on CPU, '
        'convert it to its deploy form, check that both forms predict the '
        'same, pick the fastest serving that keeps the accuracy and write a '
        'JSON report.')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help=f'classification config (default: '
                        f'{DEFAULT_CONFIG})')
    parser.add_argument('--work-dir', default='work_dirs/digits_demo',
                        help='logs, checkpoints, report.json (default: '
                        'work_dirs/digits_demo)')
    parser.add_argument('--data-root', default='data/digits',
                        help='digits image folder; written if missing '
                        '(default: data/digits)')
    parser.add_argument('--epochs', type=int, default=None,
                        help='training epochs (default: the config\'s)')
    parser.add_argument('--timing-batch', type=int, default=128,
                        help='batch size of the speed measurement '
                        '(default: 128)')
    parser.add_argument('--timing-rounds', type=int, default=3,
                        help='alternating timing rounds (default: 3)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads for training and timing '
                        '(default: 1; this small model gains little from '
                        'more, and one thread is not slowed down by other '
                        'programs on a shared machine)')
    add_choice_args(parser)
    add_model_args(parser, checkpoint=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if min(args.timing_batch, args.timing_rounds, args.threads) < 1:
        raise ToolError('--timing-batch, --timing-rounds and --threads must '
                        'be positive whole numbers.')
    torch.set_num_threads(args.threads)
    run_digits_demo(args.config, work_dir=args.work_dir,
                    data_root=args.data_root, epochs=args.epochs,
                    cfg_options=args.cfg_options,
                    timing_batch=args.timing_batch,
                    timing_rounds=args.timing_rounds,
                    min_time=args.min_time, max_drop=args.max_drop)


if __name__ == '__main__':
    run_tool(main)
