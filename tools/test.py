"""Evaluate a checkpoint with a config (mmpretrain or mmseg scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--cfg-options K=V ...] [--launcher pytorch]

The checkpoint is loaded strictly: a checkpoint that does not fit the model
is an error, not a silently random model. A training-form checkpoint works
with the configs/deploy/*_deploy.py configs (fused while loading).
Multi-process: tools/dist_test.sh CONFIG CHECKPOINT GPUS, tools/slurm_test.sh.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from repvgg_mm.runner_setup import (build_runner, config_for_testing,  # noqa: E402
                                    load_checkpoint_strictly, runner_session,
                                    test_parser)
from repvgg_mm.utils.cli import run_tool  # noqa: E402


def evaluate(cfg, args):
    runner = build_runner(cfg)
    load_checkpoint_strictly(runner, args.checkpoint, args.config)
    runner.test()


def main(argv=None):
    args = test_parser().parse_args(argv)
    cfg = config_for_testing(args)
    if args.check_only:
        print(f'{args.config}: ok')
        return 0
    with runner_session():
        evaluate(cfg, args)  # the Runner lives in evaluate's frame only


if __name__ == '__main__':
    run_tool(main)
