# Cityscapes with 713x713 training crops (paper Sec. 4.3, PSPNet's protocol):
# mmseg's CityscapesDataset and IoUMetric, 2 images per GPU, images resized
# by 0.5-2.0 around 2048x1024, tested at 2048x1024. `data_root` must hold
# leftImg8bit/ and gtFine/ with the *_gtFine_labelTrainIds.png files written
# by mmseg's tools/dataset_converters/cityscapes.py.
#
# Self-contained on purpose: inheriting `mmseg::_base_/datasets/...` makes
# mmengine 0.10.7 parse all 106 metafiles of mmseg for every such reference
# (~2 s per config load, measured here) before it falls back to the path.
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
crop_size = (713, 713)
img_scale = (2048, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # annotations after Resize: metrics are computed at the original size
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
