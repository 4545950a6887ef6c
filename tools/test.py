"""Evaluate a checkpoint with a config (mmpretrain, mmseg or mmdet scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--unsafe-load] [--cfg-options K=V ...] [--launcher pytorch]

The checkpoint is read weights-only (--unsafe-load: fully unpickled, for
trusted files only) and loaded strictly: a checkpoint that does not fit the
model is an error, not a silently random model. A training-form checkpoint
works with the configs/deploy/*_deploy.py configs (fused while loading).
Multi-process: tools/dist_test.sh CONFIG CHECKPOINT GPUS, tools/slurm_test.sh.
"""

from harness.cli import ToolParser, add_runner_args, run_tool, runner_options
from repvgg_mm.apis.test import test, test_config


def parse_args(argv=None):
    parser = ToolParser(
        description='Evaluate a checkpoint (mmpretrain, mmseg or mmdet '
        'config).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out',
                        help='also dump the predictions to this .pkl file')
    add_runner_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = test_config(args.config, args.checkpoint, out=args.out,
                      unsafe_load=args.unsafe_load, **runner_options(args))
    if args.check_only:
        print(f'{args.config}: ok')
        return 0
    test(cfg, args.checkpoint, unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    run_tool(main)
