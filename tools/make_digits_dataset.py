"""Write scikit-learn's handwritten digits as an ImageNet-style image folder.

    python tools/make_digits_dataset.py [OUT_DIR] [--size 32]
        [--val-fraction 0.2] [--seed 0] [--overwrite]

Result: ``OUT_DIR/{train,val}/<digit>/<index>.png`` (a stratified, seeded
split) plus ``OUT_DIR/digits_meta.json``, readable by mmpretrain's
``CustomDataset``. Running it again with the same settings does nothing.
"""

from harness.cli import ToolParser, run_tool
from harness.demos.digits_dataset import (DEFAULT_SEED, DEFAULT_SIZE,
                                          DEFAULT_VAL_FRACTION,
                                          write_digits_dataset)


def parse_args(argv=None):
    parser = ToolParser(
        description='Write the scikit-learn digits (1,797 real 8x8 '
        'handwritten digits) as upscaled PNG files in train/ and val/ class '
        'folders for mmpretrain\'s CustomDataset.')
    parser.add_argument('out_dir', nargs='?', default='data/digits',
                        help='output folder (default: data/digits)')
    parser.add_argument('--size', type=int, default=DEFAULT_SIZE,
                        help=f'side of the written images in pixels '
                        f'(default: {DEFAULT_SIZE})')
    parser.add_argument('--val-fraction', type=float,
                        default=DEFAULT_VAL_FRACTION,
                        help='share of every class held out for validation '
                        f'(default: {DEFAULT_VAL_FRACTION})')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED,
                        help=f'seed of the split (default: {DEFAULT_SEED})')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a digits dataset written earlier with '
                        'other settings')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    write_digits_dataset(args.out_dir, size=args.size,
                         val_fraction=args.val_fraction, seed=args.seed,
                         overwrite=args.overwrite)


if __name__ == '__main__':
    run_tool(main)
