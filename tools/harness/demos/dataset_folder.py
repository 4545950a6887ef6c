"""Where a dataset writer may write: the one check of every ``make_*``
tool's OUT_DIR."""
import os
from typing import Type

from repvgg_mm.io.output_guard import guard_output


def check_dataset_folder(out_dir: str, overwrite: bool,
                         error: Type[Exception]) -> str:
    """``out_dir`` made absolute, after the output guard (a folder that can
    be written) and, without ``overwrite``, a refusal (``error``) of a
    non-empty folder."""
    guard_output(out_dir, 'OUT_DIR', folder=True)
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise error(f'"{out_dir}" already exists and is not empty. Pass '
                    f'--overwrite to replace it, or choose another folder.')
    return out_dir
