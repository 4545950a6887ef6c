"""A small synthetic dataset in the exact Cityscapes layout.

:func:`write_cityscapes_demo` writes::

    OUT_DIR/
    ├── leftImg8bit/train/<city>/<city>_000000_0000NN_leftImg8bit.png   RGB
    ├── leftImg8bit/val/<city>/...
    ├── gtFine/train/<city>/<city>_000000_0000NN_gtFine_labelTrainIds.png
    └── gtFine/val/<city>/...

the files mmsegmentation's ``CityscapesDataset`` reads after its own
``tools/dataset_converters/cityscapes.py`` has turned the real polygons into
``*_labelTrainIds.png`` (train ids 0-18, 255 = ignore). The unmodified
``CityscapesDataset(data_root=OUT_DIR, data_prefix=dict(
img_path='leftImg8bit/train', seg_map_path='gtFine/train'))`` loads it.

Each scene is a mosaic of regions (a Voronoi partition of random seeds),
each region one of the 19 classes painted in that class's Cityscapes
palette colour with a per-region brightness shift and per-pixel noise, plus
an "ego vehicle" band at the bottom labelled 255 (ignored), as in the real
data. Colour identifies the class, so a tiny model learns it in a few dozen
iterations and reaches a non-trivial mIoU; region borders and noise keep
it from being perfect.

The folder appears atomically: everything is written to a temporary
sibling folder that is renamed into place at the end, so an interrupted run
leaves no half dataset behind.
"""
import os
from typing import Dict, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from repvgg_mm.errors import ConfigError
from repvgg_mm.io.atomic import atomic_directory

from .dataset_folder import check_dataset_folder

NUM_CLASSES = 19
IGNORE_INDEX = 255
IMG_DIR, SEG_DIR = 'leftImg8bit', 'gtFine'
IMG_SUFFIX = '_leftImg8bit.png'
SEG_SUFFIX = '_gtFine_labelTrainIds.png'
#: real Cityscapes city names, split as in the real dataset
CITIES = {
    'train': ('aachen', 'bochum', 'bremen'),
    'val': ('frankfurt', 'lindau', 'munster'),
}
DEFAULT_SIZE = (64, 128)  # (height, width): Cityscapes' 1:2 aspect ratio
MIN_SIZE, MAX_SIZE = 16, 4096
REGIONS_PER_SCENE = (6, 12)
NOISE_STD = 12.0
BRIGHTNESS_JITTER = 20.0
EGO_BAND = (0.0, 0.12)  # fraction of the height labelled 255 at the bottom


class CityscapesDemoError(ConfigError):
    """Bad settings or an output folder that must not be used."""


def cityscapes_palette() -> np.ndarray:
    """(19, 3) uint8 RGB colours of the train ids (``CityscapesDataset``)."""
    from mmseg.datasets import CityscapesDataset
    palette = np.asarray(CityscapesDataset.METAINFO['palette'], np.uint8)
    assert palette.shape == (NUM_CLASSES, 3), palette.shape
    return palette


def file_stem(city: str, index: int) -> str:
    """``<city>_000000_0000NN`` as the real files are named."""
    return f'{city}_000000_{index:06d}'


def synthesize_scene(rng: np.random.Generator, height: int, width: int,
                     palette: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: ``(RGB image (H, W, 3), train-id label (H, W))``, uint8."""
    num_regions = int(rng.integers(*REGIONS_PER_SCENE, endpoint=True))
    classes = rng.choice(NUM_CLASSES, size=num_regions, replace=False)
    seeds = rng.uniform((0, 0), (height, width), size=(num_regions, 2))
    rows, cols = np.mgrid[0:height, 0:width]
    dist = ((rows[..., None] - seeds[:, 0])**2 +
            (cols[..., None] - seeds[:, 1])**2)
    region = dist.argmin(axis=-1)
    label = classes[region].astype(np.uint8)

    shift = rng.normal(0, BRIGHTNESS_JITTER, size=(num_regions, 1))
    image = palette[classes].astype(np.float64) + shift
    image = image[region] + rng.normal(0, NOISE_STD, size=(height, width, 3))

    band = int(round(height * rng.uniform(*EGO_BAND)))
    if band:
        label[height - band:] = IGNORE_INDEX
        image[height - band:] = rng.uniform(0, 40) + rng.normal(
            0, NOISE_STD, size=(band, width, 3))
    return np.clip(image, 0, 255).round().astype(np.uint8), label


def check_settings(num_train: int, num_val: int,
                   size: Sequence[int]) -> Tuple[int, int]:
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, int) or value < 1:
            raise CityscapesDemoError(
                f'{name} must be a positive number of images, got {value!r}.')
    if len(size) != 2 or any(
            not isinstance(s, int) or not MIN_SIZE <= s <= MAX_SIZE
            for s in size):
        raise CityscapesDemoError(
            f'size must be two integers HEIGHT WIDTH between {MIN_SIZE} and '
            f'{MAX_SIZE}, got {tuple(size)!r} (e.g. --size 64 128).')
    return int(size[0]), int(size[1])


def _write_split(root: str, split: str, num_images: int, height: int,
                 width: int, palette: np.ndarray, rng: np.random.Generator,
                 progress: ProgressBar) -> np.ndarray:
    """Write one split; return its pixel count per train id (19 + ignore)."""
    from PIL import Image
    counts = np.zeros(NUM_CLASSES + 1, np.int64)
    cities = CITIES[split]
    for index in range(num_images):
        city = cities[index % len(cities)]
        stem = file_stem(city, index)
        image, label = synthesize_scene(rng, height, width, palette)
        for folder, suffix, array in ((IMG_DIR, IMG_SUFFIX, image),
                                      (SEG_DIR, SEG_SUFFIX, label)):
            city_dir = os.path.join(root, folder, split, city)
            os.makedirs(city_dir, exist_ok=True)
            Image.fromarray(array).save(os.path.join(city_dir, stem + suffix))
        ids, n = np.unique(label, return_counts=True)
        counts[np.minimum(ids, NUM_CLASSES)] += n
        progress.update()
    return counts


def write_cityscapes_demo(out_dir: str,
                          num_train: int = 24,
                          num_val: int = 6,
                          size: Sequence[int] = DEFAULT_SIZE,
                          seed: int = 0,
                          overwrite: bool = False) -> Dict[str, dict]:
    """Write the demo dataset to ``out_dir``; return per-split statistics.

    Returns:
        ``{split: {'images': n, 'class_pixels': {train id: pixels},
        'ignored_pixels': n}}``.

    Raises:
        CityscapesDemoError: bad settings, or ``out_dir`` is a non-empty
            folder and ``overwrite`` is False.
    """
    height, width = check_settings(num_train, num_val, size)
    out_dir = check_dataset_folder(out_dir, overwrite, CityscapesDemoError)
    palette = cityscapes_palette()
    rng = np.random.default_rng(seed)
    print_log(f'writing a synthetic Cityscapes-layout dataset to {out_dir} '
              f'({num_train} train + {num_val} val images of '
              f'{height}x{width})', logger='current')
    stats = {}
    progress = ProgressBar(num_train + num_val)
    with atomic_directory(out_dir) as tmp_root:
        for split, num in (('train', num_train), ('val', num_val)):
            counts = _write_split(tmp_root, split, num, height, width,
                                  palette, rng, progress)
            stats[split] = dict(
                images=num,
                class_pixels={c: int(counts[c])
                              for c in range(NUM_CLASSES) if counts[c]},
                ignored_pixels=int(counts[NUM_CLASSES]))
    return stats
