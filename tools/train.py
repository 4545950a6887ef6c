"""Train a model from a config (mmpretrain, mmseg or mmdet scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--unsafe-load] [--cfg-options K=V ...]
        [--launcher pytorch]

A --resume checkpoint is read weights-only and checked against the model
before anything is written; --unsafe-load unpickles it fully (trusted
files only).

Multi-process: tools/dist_train.sh CONFIG GPUS, tools/slurm_train.sh.
"""

from harness.cli import ToolParser, add_runner_args, run_tool, runner_options
from repvgg_mm.apis.train import train, training_config


def parse_args(argv=None):
    parser = ToolParser(
        description='Train a model (mmpretrain, mmseg or mmdet config) with '
        'a RepVGG backbone.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CHECKPOINT, or without a value from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision training (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr linearly with the real batch size '
                        '(auto_scale_lr.base_batch_size of the config)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    add_runner_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = training_config(args.config, resume=args.resume, amp=args.amp,
                          auto_scale_lr=args.auto_scale_lr,
                          validate=not args.no_validate,
                          unsafe_load=args.unsafe_load,
                          **runner_options(args))
    if args.check_only:
        print(f'{args.config}: ok')
        return 0
    train(cfg, unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    run_tool(main)
