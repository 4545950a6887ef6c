"""Convert a trained RepVGG checkpoint to its deploy (fused) form.

    python tools/convert_deploy.py CONFIG CHECKPOINT OUT [--verify]

Works for any mmpretrain, mmseg or mmdet config whose model holds RepVGG
blocks (BN or SyncBN). Writes OUT, the deploy checkpoint (``meta`` kept;
optimizer, schedulers, message hub and EMA state dropped), and the deploy
config next to it as ``<OUT name>.py`` unless ``--out-config`` says where;
both atomically, nothing on failure.

The checkpoint is read with ``torch.load(weights_only=True)``: it cannot
execute code. ``--unsafe-load`` turns that off for old pickles you trust.
"""
import os

from harness.cli import ToolParser, add_model_args, run_tool
from repvgg_mm.apis.convert import DEFAULT_REL_TOL, convert_checkpoint


def parse_args(argv=None):
    parser = ToolParser(
        description='Convert a RepVGG training checkpoint to the deploy '
        'form (one 3x3 conv per block) and write the matching config.')
    parser.add_argument('config', help='training config (mmpretrain/mmseg/'
                        'mmdet)')
    parser.add_argument('checkpoint', help='training checkpoint')
    parser.add_argument(
        'out', help='deploy checkpoint to write (missing parent folders are '
        'created; checked before any work)')
    parser.add_argument(
        '--out-config',
        help='deploy config to write (default: OUT with the suffix .py; '
        'missing parent folders are created)')
    parser.add_argument(
        '--verify', action='store_true',
        help='run both forms in eval mode on a random input and fail if '
        'their outputs differ by more than --tolerance')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='input size for --verify (default: from the config)')
    parser.add_argument(
        '--tolerance', type=float, default=DEFAULT_REL_TOL,
        help='max error relative to the largest output for --verify '
        f'(default {DEFAULT_REL_TOL})')
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = convert_checkpoint(
        args.config, args.checkpoint, args.out, out_config=args.out_config,
        verify=args.verify, shape=args.shape, tolerance=args.tolerance,
        unsafe_load=args.unsafe_load, cfg_options=args.cfg_options)
    if args.verify:
        print('verify: OK')
    size_mb = os.path.getsize(result.checkpoint) / 2**20
    print(f'wrote {result.checkpoint} ({size_mb:.1f} MiB) and '
          f'{result.config}; total {result.seconds:.1f} s')


if __name__ == '__main__':
    run_tool(main)
