"""A small COCO-format detection dataset of real handwritten digits.

:func:`write_digits_detection` places scikit-learn's 8x8 handwritten digit
scans (``sklearn.datasets.load_digits``, 1,797 real images shipped with
scikit-learn) on noisy canvases, each digit upscaled to a random size, in a
random colour, at a random free spot, and writes::

    OUT_DIR/
    ├── annotations/instances_train.json   COCO "instances" format
    ├── annotations/instances_val.json
    ├── train/000000.png ...               RGB canvases
    └── val/000000.png ...

which mmdet's unmodified ``CocoDataset(data_root=OUT_DIR,
ann_file='annotations/instances_train.json', data_prefix=dict(
img='train/'), metainfo=dict(classes=CLASSES))`` loads and ``CocoMetric``
scores. The ten categories are the digits ``'0'`` .. ``'9'``; a box is the
tight box of the digit's ink (the rows and columns of the 8x8 scan that are
not blank, scaled like the digit), so boxes and labels are known exactly.

The digits of the val canvases are scans that no train canvas uses (the
stratified split of :mod:`.digits_dataset`). The folder appears atomically
(:func:`repvgg_mm.io.atomic.atomic_directory`), so an interrupted run leaves
no half dataset behind.
"""
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from repvgg_mm.errors import ConfigError
from repvgg_mm.io.atomic import atomic_directory, atomic_write_json

from .dataset_folder import check_dataset_folder
from .digits_dataset import (SOURCE, SOURCE_SIZE, digit_to_image,
                             load_digits_arrays, stratified_split)

CLASSES = tuple(str(d) for d in range(10))
SPLITS = ('train', 'val')
ANN_DIR = 'annotations'
DEFAULT_CANVAS = 64
DEFAULT_DIGIT_SIZES = (14, 28)  # side of the upscaled 8x8 scan, in pixels
DEFAULT_DIGITS_PER_IMAGE = (1, 3)
MIN_CANVAS, MAX_CANVAS = 32, 1024
VAL_FRACTION = 0.2  # of the scans of every class, kept for val canvases
BACKGROUND_LEVEL = (0, 70)
NOISE_STD = 10.0
MAX_PLACEMENT_TRIES = 100


class DigitsDetectionError(ConfigError):
    """Bad settings or an output folder that must not be used."""


def ann_file(split: str) -> str:
    """``annotations/instances_<split>.json`` (relative to the data root)."""
    return f'{ANN_DIR}/instances_{split}.json'


def ink_box(scan: np.ndarray, side: int) -> Tuple[float, float, float, float]:
    """``(x, y, w, h)`` of the non-blank rows/columns of an 8x8 scan drawn
    ``side`` pixels wide, relative to the patch's top-left corner."""
    rows = np.flatnonzero(scan.max(axis=1) > 0)
    cols = np.flatnonzero(scan.max(axis=0) > 0)
    scale = side / SOURCE_SIZE
    x0, x1 = cols[0] * scale, (cols[-1] + 1) * scale
    y0, y1 = rows[0] * scale, (rows[-1] + 1) * scale
    return x0, y0, x1 - x0, y1 - y0


def _free_spot(rng, canvas: int, side: int, taken: List[Tuple[int, ...]]):
    """Top-left corner of a ``side`` square overlapping no ``taken`` one."""
    for _ in range(MAX_PLACEMENT_TRIES):
        x, y = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
        if all(x + side <= tx or tx + ts <= x or y + side <= ty
               or ty + ts <= y for tx, ty, ts in taken):
            return x, y
    return None


def compose_canvas(rng: np.random.Generator, scans: np.ndarray,
                   labels: np.ndarray, canvas: int,
                   digit_sizes: Sequence[int]) -> Tuple[np.ndarray, list]:
    """One canvas: ``(RGB image (canvas, canvas, 3) uint8, [(label, (x, y,
    w, h)), ...])`` with every given scan placed (some may not fit)."""
    base = rng.uniform(*BACKGROUND_LEVEL, size=3)
    image = base + rng.normal(0, NOISE_STD, size=(canvas, canvas, 3))
    objects, taken = [], []
    for scan, label in zip(scans, labels):
        side = int(rng.integers(digit_sizes[0], digit_sizes[1],
                                endpoint=True))
        spot = _free_spot(rng, canvas, side, taken)
        if spot is None:
            continue
        x, y = spot
        taken.append((x, y, side))
        alpha = np.asarray(digit_to_image(scan, side), np.float64)[..., None]
        alpha /= 255.0
        colour = rng.uniform(150, 255, size=3)
        patch = image[y:y + side, x:x + side]
        image[y:y + side, x:x + side] = patch * (1 - alpha) + colour * alpha
        bx, by, bw, bh = ink_box(scan, side)
        objects.append((int(label), (x + bx, y + by, bw, bh)))
    return np.clip(image, 0, 255).round().astype(np.uint8), objects


def check_settings(num_train, num_val, canvas, digit_sizes,
                   digits_per_image) -> None:
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DigitsDetectionError(
                f'{name} must be a positive number of images, got {value!r}.')
    if isinstance(canvas, bool) or not isinstance(canvas, int) or not (
            MIN_CANVAS <= canvas <= MAX_CANVAS):
        raise DigitsDetectionError(
            f'canvas must be a side in pixels from {MIN_CANVAS} to '
            f'{MAX_CANVAS}, got {canvas!r} (e.g. --canvas 64).')
    low, high = digit_sizes
    if not (SOURCE_SIZE <= low <= high <= canvas):
        raise DigitsDetectionError(
            f'digit sizes must satisfy {SOURCE_SIZE} <= MIN <= MAX <= canvas '
            f'({canvas}), got {tuple(digit_sizes)} (e.g. --digit-sizes 14 '
            f'28).')
    low, high = digits_per_image
    if not 1 <= low <= high:
        raise DigitsDetectionError(
            f'digits per image must satisfy 1 <= MIN <= MAX, got '
            f'{tuple(digits_per_image)} (e.g. --digits-per-image 1 3).')


def _write_split(root: str, split: str, num_images: int, pool: np.ndarray,
                 scans: np.ndarray, labels: np.ndarray, canvas: int,
                 digit_sizes, digits_per_image, rng,
                 progress: ProgressBar) -> dict:
    """Write one split's canvases and COCO file; return its statistics."""
    from PIL import Image
    os.makedirs(os.path.join(root, split))
    images, annotations = [], []
    per_class = np.zeros(len(CLASSES), np.int64)
    for index in range(num_images):
        count = int(rng.integers(digits_per_image[0], digits_per_image[1],
                                 endpoint=True))
        chosen = rng.choice(pool, size=count, replace=False)
        pixels, objects = compose_canvas(rng, scans[chosen], labels[chosen],
                                         canvas, digit_sizes)
        file_name = f'{index:06d}.png'
        Image.fromarray(pixels).save(os.path.join(root, split, file_name))
        images.append(dict(id=index, file_name=file_name, width=canvas,
                           height=canvas))
        for label, (x, y, w, h) in objects:
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index,
                category_id=label + 1, bbox=[round(v, 2) for v in (x, y, w,
                                                                   h)],
                area=round(w * h, 2), iscrowd=0))
            per_class[label] += 1
        progress.update()
    coco = dict(
        info=dict(description=f'digits of {SOURCE} on {canvas}x{canvas} '
                  f'canvases'),
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name)
                    for i, name in enumerate(CLASSES)])
    atomic_write_json(coco, os.path.join(root, ann_file(split)), indent=None)
    return dict(images=num_images, boxes=len(annotations),
                boxes_per_class={c: int(n) for c, n in zip(CLASSES,
                                                           per_class)})


def write_digits_detection(out_dir: str,
                           num_train: int = 400,
                           num_val: int = 100,
                           canvas: int = DEFAULT_CANVAS,
                           digit_sizes: Sequence[int] = DEFAULT_DIGIT_SIZES,
                           digits_per_image: Sequence[int] = (
                               DEFAULT_DIGITS_PER_IMAGE),
                           seed: int = 0,
                           overwrite: bool = False) -> Dict[str, dict]:
    """Write the dataset to ``out_dir``; return per-split statistics
    ``{split: {'images': n, 'boxes': n, 'boxes_per_class': {...}}}``.

    Raises:
        DigitsDetectionError: bad settings, or ``out_dir`` is a non-empty
            folder and ``overwrite`` is False (nothing is written then).
    """
    digit_sizes, digits_per_image = tuple(digit_sizes), tuple(
        digits_per_image)
    check_settings(num_train, num_val, canvas, digit_sizes, digits_per_image)
    out_dir = check_dataset_folder(out_dir, overwrite, DigitsDetectionError)
    scans, labels = load_digits_arrays()
    pools = stratified_split(labels, VAL_FRACTION, seed)
    rng = np.random.default_rng(seed)
    print_log(f'writing digits on {canvas}x{canvas} canvases to {out_dir} '
              f'({num_train} train + {num_val} val images, digits of '
              f'{digit_sizes[0]}-{digit_sizes[1]} px, {digits_per_image[0]}-'
              f'{digits_per_image[1]} per image)', logger='current')
    stats = {}
    progress = ProgressBar(num_train + num_val)
    with atomic_directory(out_dir) as tmp_root:
        for split, num in (('train', num_train), ('val', num_val)):
            stats[split] = _write_split(tmp_root, split, num, pools[split],
                                        scans, labels, canvas, digit_sizes,
                                        digits_per_image, rng, progress)
    return stats
