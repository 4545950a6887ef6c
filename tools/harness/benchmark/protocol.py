"""The speed protocol, per task: the paper's for classification (Table 4)
and segmentation (Sec. 4.3); mmdet's usual test size for detection."""
from typing import NamedTuple, Tuple

from repvgg_mm.converters.config_model import task_of


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


#: the package's task (:func:`repvgg_mm.converters.config_model.task_of`)
#: -> the protocol (the records' ``task``)
PROTOCOL_OF_TASK = {'segmentor': 'segmentation', 'detector': 'detection'}


def protocol_of(model) -> str:
    """``'segmentation'`` for mmseg segmentors, ``'detection'`` for mmdet
    detectors, else ``'classification'``.

    Other models fall back to the classification protocol; pass
    ``--batch-size`` and ``--shape`` for them.
    """
    return PROTOCOL_OF_TASK.get(task_of(model), 'classification')


def resolve(task: str, batch_size: int = None,
            shape: Tuple[int, int] = None) -> Protocol:
    """The protocol of ``task`` with the user's overrides applied."""
    default = TASKS[task]
    return Protocol(batch_size or default.batch_size,
                    tuple(shape) if shape else default.shape)
