"""Train a model from a config (mmpretrain or mmseg scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options K=V ...] [--launcher pytorch]

Multi-process: tools/dist_train.sh CONFIG GPUS, tools/slurm_train.sh.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from repvgg_mm.runner_setup import (build_runner, config_for_training,  # noqa: E402
                                    runner_session, train_parser)
from repvgg_mm.utils.cli import run_tool  # noqa: E402


def main(argv=None):
    args = train_parser().parse_args(argv)
    cfg = config_for_training(args)
    if args.check_only:
        print(f'{args.config}: ok')
        return 0
    with runner_session():
        build_runner(cfg).train()  # no reference to the Runner is kept


if __name__ == '__main__':
    run_tool(main)
