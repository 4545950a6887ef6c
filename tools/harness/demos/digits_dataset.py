"""scikit-learn's handwritten digits as an ImageNet-style image folder.

``sklearn.datasets.load_digits`` ships 1,797 real 8x8 grey-level scans of
handwritten digits (UCI "Optical Recognition of Handwritten Digits") inside
the scikit-learn package, so no download is needed.
:func:`write_digits_dataset` writes them as upscaled PNG files::

    OUT_DIR/
    ├── digits_meta.json        settings and per-class image counts
    ├── train/0/0000.png ...    file name = index in load_digits()
    └── val/0/0010.png ...

which mmpretrain's ``CustomDataset(data_root=OUT_DIR, data_prefix='train')``
reads through the usual ``LoadImageFromFile`` pipeline. The train/val split
is stratified (scikit-learn's ``train_test_split``: the same fraction of
every class is held out) and fixed by the seed. The folder appears
atomically (:func:`repvgg_mm.io.atomic.atomic_directory`), so an interrupted
run leaves no half dataset behind.
"""
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from repvgg_mm.errors import ConfigError
from repvgg_mm.io.atomic import atomic_directory
from repvgg_mm.io.output_guard import guard_output

SPLITS = ('train', 'val')
META_FILE = 'digits_meta.json'
META_VERSION = 1
SOURCE = 'sklearn.datasets.load_digits'
#: grey levels of load_digits() run from 0 to 16
SOURCE_MAX_LEVEL = 16
SOURCE_SIZE = 8
MAX_SIZE = 1024
DEFAULT_SIZE = 32
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 0


class DigitsDatasetError(ConfigError):
    """Bad settings or an output folder that cannot (or must not) be used."""


def load_digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """``(images (N, 8, 8) float in [0, 16], labels (N,) int)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DigitsDatasetError(
            'scikit-learn is not installed, and the digits images ship with '
            'it. Install it with "pip install scikit-learn" (or '
            '"pip install -e .[tests]").') from None
    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


def check_settings(size: int, val_fraction: float, seed: int) -> None:
    """Raise :class:`DigitsDatasetError` for settings that make no dataset."""
    if isinstance(size, bool) or not isinstance(size, int) or not (
            SOURCE_SIZE <= size <= MAX_SIZE):
        raise DigitsDatasetError(
            f'--size must be a whole number of pixels from {SOURCE_SIZE} (the '
            f'original 8x8) to {MAX_SIZE}, got {size!r}; the demo uses '
            f'{DEFAULT_SIZE}.')
    if not isinstance(val_fraction, (int, float)) or not (
            0.0 < val_fraction < 1.0):
        raise DigitsDatasetError(
            f'--val-fraction must be a number strictly between 0 and 1 (the '
            f'share of each class held out for validation), got '
            f'{val_fraction!r}; the default is {DEFAULT_VAL_FRACTION}.')
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DigitsDatasetError(
            f'--seed must be a non-negative whole number, got {seed!r}.')


def stratified_split(labels: np.ndarray, val_fraction: float,
                     seed: int) -> Dict[str, np.ndarray]:
    """Indices of each split: scikit-learn's stratified split, holding out
    ``round(N * val_fraction)`` of the ``N`` images, every class in
    proportion. Deterministic for a given seed."""
    from sklearn.model_selection import train_test_split
    for label in np.unique(labels):
        members = int((labels == label).sum())
        num_val = int(round(members * val_fraction))
        if not 0 < num_val < members:
            raise DigitsDatasetError(
                f'--val-fraction {val_fraction} leaves class {label} '
                f'({members} images) with {num_val} validation and '
                f'{members - num_val} training images; both splits need '
                f'at least one. Use a value such as {DEFAULT_VAL_FRACTION}.')
    train, val = train_test_split(
        np.arange(len(labels)), test_size=int(round(len(labels) *
                                                    val_fraction)),
        stratify=labels, random_state=seed)
    return dict(train=np.sort(train), val=np.sort(val))


def digit_to_image(image: np.ndarray, size: int):
    """One 8x8 digit (levels 0..16) as a ``size`` x ``size`` grey PIL image."""
    from PIL import Image
    pixels = np.clip(np.rint(image * (255.0 / SOURCE_MAX_LEVEL)), 0, 255)
    img = Image.fromarray(pixels.astype(np.uint8), mode='L')
    if size != SOURCE_SIZE:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return img


def read_meta(root: str) -> Optional[dict]:
    """The metadata of a dataset written here, or ``None``."""
    path = os.path.join(root, META_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and 'counts' in meta else None


def count_images(root: str) -> Dict[str, Dict[str, int]]:
    """PNG files per split and class folder found under ``root``."""
    counts = {}
    for split in SPLITS:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            continue
        counts[split] = {
            cls: sum(1 for name in os.listdir(os.path.join(split_dir, cls))
                     if name.endswith('.png'))
            for cls in sorted(os.listdir(split_dir))
            if os.path.isdir(os.path.join(split_dir, cls))
        }
    return counts


def is_complete(root: str, meta: Optional[dict] = None) -> bool:
    """Does ``root`` hold every image its metadata lists (and no other)?"""
    meta = meta if meta is not None else read_meta(root)
    return meta is not None and count_images(root) == meta['counts']


def _settings(size, val_fraction, seed) -> dict:
    return dict(size=size, val_fraction=float(val_fraction), seed=seed)


def _write_split_images(tmp_root, images, labels, split_indices,
                        size) -> Dict[str, Dict[str, int]]:
    progress = ProgressBar(sum(len(idx) for idx in split_indices.values()))
    counts = {}
    for split in SPLITS:
        counts[split] = {}
        for index in split_indices[split]:
            cls = str(int(labels[index]))
            folder = os.path.join(tmp_root, split, cls)
            if cls not in counts[split]:
                os.makedirs(folder, exist_ok=True)
                counts[split][cls] = 0
            digit_to_image(images[index], size).save(
                os.path.join(folder, f'{index:04d}.png'))
            counts[split][cls] += 1
            progress.update()
        counts[split] = dict(sorted(counts[split].items()))
    return counts


def write_digits_dataset(out_dir: str,
                         size: int = DEFAULT_SIZE,
                         val_fraction: float = DEFAULT_VAL_FRACTION,
                         seed: int = DEFAULT_SEED,
                         overwrite: bool = False) -> dict:
    """Write the digits image folder to ``out_dir``; return its metadata.

    Idempotent: if ``out_dir`` already holds a complete dataset written with
    the same settings, nothing is written. A folder holding a digits dataset
    with other settings (or an incomplete one) is replaced only with
    ``overwrite=True``; a non-empty folder that is not a digits dataset is
    never touched.

    Raises:
        DigitsDatasetError: bad settings, an unusable ``out_dir``, or
            scikit-learn missing.
    """
    check_settings(size, val_fraction, seed)
    settings = _settings(size, val_fraction, seed)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise DigitsDatasetError(
                f'"{out_dir}" exists and is not a folder. Choose another '
                f'OUT_DIR (the default is data/digits).')
        meta = read_meta(out_dir)
        if meta is None and os.listdir(out_dir):
            raise DigitsDatasetError(
                f'"{out_dir}" is a non-empty folder that was not written by '
                f'this tool (no {META_FILE}); it is left untouched. Choose '
                f'another OUT_DIR or empty that folder.')
        if meta is not None and meta.get('settings') == settings and \
                is_complete(out_dir, meta):
            print_log(f'digits dataset already complete at {out_dir} '
                      f'({_summary(meta)}); nothing to do', logger='current')
            return meta
        if meta is not None and not overwrite:
            problem = ('is incomplete (its image counts differ from '
                       f'{META_FILE})' if meta.get('settings') == settings
                       else f'was written with other settings '
                            f'({meta.get("settings")}, not {settings})')
            raise DigitsDatasetError(
                f'the digits dataset at "{out_dir}" {problem}. Pass '
                f'--overwrite to replace it, or choose another OUT_DIR.')

    guard_output(out_dir, 'OUT_DIR', folder=True)
    images, labels = load_digits_arrays()
    split_indices = stratified_split(labels, val_fraction, seed)
    print_log(f'writing {len(labels)} digits from {SOURCE} as {size}x{size} '
              f'PNG to {out_dir} (val fraction {val_fraction}, seed {seed})',
              logger='current')
    with atomic_directory(out_dir) as tmp_root:
        counts = _write_split_images(tmp_root, images, labels, split_indices,
                                     size)
        meta = dict(
            format_version=META_VERSION, source=SOURCE, settings=settings,
            classes=[str(c) for c in np.unique(labels)], counts=counts,
            num_images={split: sum(counts[split].values())
                        for split in SPLITS})
        with open(os.path.join(tmp_root, META_FILE), 'w') as f:
            json.dump(meta, f, indent=2)
    print_log(f'digits dataset ready at {out_dir} ({_summary(meta)})',
              logger='current')
    return meta


def _summary(meta: dict) -> str:
    num = meta['num_images']
    size = meta['settings']['size']
    return (f'{num["train"]} train + {num["val"]} val images, '
            f'{size}x{size}, {len(meta["classes"])} classes')


def ensure_digits_dataset(root: str) -> dict:
    """Use the complete digits dataset at ``root`` (any settings), or write
    one with the default settings if ``root`` does not exist yet."""
    meta = read_meta(root) if os.path.isdir(root) else None
    if meta is not None and is_complete(root, meta):
        print_log(f'using the digits dataset at {root} ({_summary(meta)})',
                  logger='current')
        return meta
    if os.path.exists(root) and meta is not None:
        raise DigitsDatasetError(
            f'the digits dataset at "{root}" is incomplete (its image counts '
            f'differ from {META_FILE}). Rewrite it with "python '
            f'tools/make_digits_dataset.py {root} --overwrite".')
    return write_digits_dataset(root)
