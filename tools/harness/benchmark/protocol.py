"""The speed protocol, per task: the paper's for classification (Table 4)
and segmentation (Sec. 4.3); mmdet's usual test size for detection."""
from typing import NamedTuple, Tuple


class Protocol(NamedTuple):
    batch_size: int
    shape: Tuple[int, int]


#: classification: 1080Ti, batch 128, fp32, 224x224 (paper Table 4)
CLASSIFICATION = Protocol(128, (224, 224))
#: segmentation: batch 16, 713x713, fp32 (paper Sec. 4.3, Table 8)
SEGMENTATION = Protocol(16, (713, 713))
#: detection: one 1333x800 (w x h) image, the test scale of mmdet's COCO
#: configs (the paper has no detection experiments)
DETECTION = Protocol(1, (800, 1333))

TASKS = {'classification': CLASSIFICATION, 'segmentation': SEGMENTATION,
         'detection': DETECTION}


def task_of(model, scope: str = None) -> str:
    """``'segmentation'`` for mmseg segmentors, ``'detection'`` for mmdet
    detectors, else ``'classification'``.

    Other mm models fall back to the classification protocol; pass
    ``--batch-size`` and ``--shape`` for them.
    """
    module_path = type(model).__module__
    if module_path.startswith('mmseg.') or scope == 'mmseg':
        return 'segmentation'
    if module_path.startswith('mmdet.') or scope == 'mmdet':
        return 'detection'
    return 'classification'


def resolve(task: str, batch_size: int = None,
            shape: Tuple[int, int] = None) -> Protocol:
    """The protocol of ``task`` with the user's overrides applied."""
    default = TASKS[task]
    return Protocol(batch_size or default.batch_size,
                    tuple(shape) if shape else default.shape)
