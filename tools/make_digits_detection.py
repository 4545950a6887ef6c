"""Write a small COCO-format detection dataset of handwritten digits.

    python tools/make_digits_detection.py OUT_DIR [--num-train 400]
        [--num-val 100] [--canvas 64] [--digit-sizes 14 28]
        [--digits-per-image 1 3] [--seed 0] [--overwrite]

Result: ``OUT_DIR/{train,val}/*.png`` (scikit-learn's real 8x8 digit scans,
upscaled and placed on noisy canvases) and
``OUT_DIR/annotations/instances_{train,val}.json`` (COCO format, classes
'0'-'9', tight boxes), which mmdet's unmodified ``CocoDataset`` loads;
``configs/demo/retinanet_repvgg-tiny_digits-det.py`` trains on it.
"""

from harness.cli import ToolParser, run_tool
from harness.demos.digits_detection_dataset import (DEFAULT_CANVAS,
                                                    DEFAULT_DIGIT_SIZES,
                                                    DEFAULT_DIGITS_PER_IMAGE,
                                                    write_digits_detection)


def parse_args(argv=None):
    parser = ToolParser(
        description='Place scikit-learn\'s handwritten digits on canvases '
        'and write them as a COCO-format detection dataset (boxes and '
        'labels known) for mmdet\'s CocoDataset.')
    parser.add_argument('out_dir', help='output folder, e.g. '
                        'data/digits_det')
    parser.add_argument('--num-train', type=int, default=400,
                        help='training images (default: 400)')
    parser.add_argument('--num-val', type=int, default=100,
                        help='validation images (default: 100)')
    parser.add_argument('--canvas', type=int, default=DEFAULT_CANVAS,
                        help=f'canvas side in pixels (default: '
                        f'{DEFAULT_CANVAS})')
    parser.add_argument('--digit-sizes', type=int, nargs=2,
                        default=DEFAULT_DIGIT_SIZES, metavar=('MIN', 'MAX'),
                        help='side of a placed digit in pixels (default: '
                        f'{DEFAULT_DIGIT_SIZES[0]} {DEFAULT_DIGIT_SIZES[1]})')
    parser.add_argument('--digits-per-image', type=int, nargs=2,
                        default=DEFAULT_DIGITS_PER_IMAGE,
                        metavar=('MIN', 'MAX'),
                        help='digits per canvas (default: '
                        f'{DEFAULT_DIGITS_PER_IMAGE[0]} '
                        f'{DEFAULT_DIGITS_PER_IMAGE[1]})')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT_DIR if it is not empty')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stats = write_digits_detection(
        args.out_dir, num_train=args.num_train, num_val=args.num_val,
        canvas=args.canvas, digit_sizes=args.digit_sizes,
        digits_per_image=args.digits_per_image, seed=args.seed,
        overwrite=args.overwrite)
    for split, info in stats.items():
        print(f'{split}: {info["images"]} images, {info["boxes"]} boxes '
              f'(per class: {info["boxes_per_class"]})')


if __name__ == '__main__':
    run_tool(main)
