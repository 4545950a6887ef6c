"""The main job: RepVGG on real handwritten digits, on CPU, in minutes.

    python tools/demo_digits.py [--work-dir work_dirs/digits_demo]
        [--epochs N] [--data-root data/digits] [--threads 1]
        [--timing-batch 128] [--timing-rounds 5] [--config CONFIG]
        [--cfg-options KEY=VALUE ...]

0. writes the scikit-learn digits as an image folder (if missing),
1. trains the multi-branch RepVGG of configs/demo/repvgg-tiny_digits.py with
   mmengine's Runner, 2. validates it (top-1 on the held-out split),
3. converts it to the plain 3x3-conv + ReLU deploy form, 4. validates that
   through the same pipeline and checks that every prediction is identical,
5. times both forms, 6. prints a report and writes <work-dir>/report.json
   and the deploy checkpoint. See README.md.
"""
import time

START = time.perf_counter()  # the wall clock of the report starts here

import argparse  # noqa: E402

import torch  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

from repvgg_mm.demos.digits_dataset import ensure_digits_dataset  # noqa: E402
from repvgg_mm.demos.digits_demo import (run_classification_demo, set_data_root,  # noqa
                            set_max_epochs)
from repvgg_mm.utils.cli import ToolError, load_config, run_tool  # noqa

DEFAULT_CONFIG = 'configs/demo/repvgg-tiny_digits.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a small RepVGG on the scikit-learn digits on CPU, '
        'convert it to its deploy form, check that both forms predict the '
        'same, time them and write a JSON report.')
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
    parser.add_argument('--timing-rounds', type=int, default=5,
                        help='alternating timing rounds per form (default: 5)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads for training and timing '
                        '(default: 1; this small model gains little from '
                        'more, and one thread is not slowed down by other '
                        'programs on a shared machine)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if min(args.timing_batch, args.timing_rounds, args.threads) < 1:
        raise ToolError('--timing-batch, --timing-rounds and --threads must '
                        'be positive whole numbers.')
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    if args.epochs is not None:
        set_max_epochs(cfg, args.epochs)
    set_data_root(cfg, args.data_root)

    print(f'[demo] step 0/6: digits dataset at {args.data_root}', flush=True)
    clock = time.perf_counter()
    ensure_digits_dataset(args.data_root)
    dataset_seconds = time.perf_counter() - clock

    run_classification_demo(
        cfg, work_dir=args.work_dir, config_path=args.config,
        timing_batch=args.timing_batch, timing_rounds=args.timing_rounds,
        start_time=START, seconds=dict(dataset=dataset_seconds),
        log=lambda text: print(text, flush=True))


if __name__ == '__main__':
    run_tool(main)
