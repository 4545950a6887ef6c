"""Write a small synthetic dataset in the exact Cityscapes layout.

    python tools/make_cityscapes_demo.py OUT_DIR [--num-train 24]
        [--num-val 6] [--size 64 128] [--seed 0] [--overwrite]

Result: ``OUT_DIR/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
``OUT_DIR/gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png`` (train ids
0-18, 255 = ignore), which mmsegmentation's unmodified ``CityscapesDataset``
loads; ``configs/demo/pspnet_repvgg-tiny_cityscapes-demo.py`` trains on it.
"""

from harness.cli import ToolParser, run_tool
from harness.demos.cityscapes_dataset import (DEFAULT_SIZE,
                                              write_cityscapes_demo)


def parse_args(argv=None):
    parser = ToolParser(
        description='Write synthetic street scenes (colour-coded class '
        'regions plus noise) in the Cityscapes folder layout, with '
        '*_gtFine_labelTrainIds.png labels, for mmsegmentation\'s '
        'CityscapesDataset.')
    parser.add_argument('out_dir', help='output folder, e.g. '
                        'data/cityscapes_demo')
    parser.add_argument('--num-train', type=int, default=24,
                        help='training images (default: 24)')
    parser.add_argument('--num-val', type=int, default=6,
                        help='validation images (default: 6)')
    parser.add_argument('--size', type=int, nargs=2, default=DEFAULT_SIZE,
                        metavar=('H', 'W'),
                        help=f'image height and width (default: '
                        f'{DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT_DIR if it is not empty')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stats = write_cityscapes_demo(args.out_dir, num_train=args.num_train,
                                  num_val=args.num_val, size=args.size,
                                  seed=args.seed, overwrite=args.overwrite)
    for split, info in stats.items():
        print(f'{split}: {info["images"]} images, '
              f'{len(info["class_pixels"])} of 19 classes present, '
              f'{info["ignored_pixels"]} pixels labelled 255 (ignore)')


if __name__ == '__main__':
    run_tool(main)
