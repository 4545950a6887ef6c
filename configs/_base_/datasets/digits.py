# scikit-learn's handwritten digits (1,797 real 8x8 scans) as an image folder
# written by `python tools/make_digits_dataset.py data/digits`:
#   data/digits/{train,val}/<digit>/<index>.png   (32x32 grey PNG)
# read from disk by mmpretrain's CustomDataset (class = folder name).
dataset_type = 'CustomDataset'
data_root = 'data/digits'
image_size = 32

# One grey channel; mean/std of the 32x32 training images (0-255 scale).
data_preprocessor = dict(
    num_classes=10, mean=[78.0], std=[83.0], to_rgb=False)

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    # any --size of the dataset tool works: everything is brought to 32x32
    dict(type='Resize', scale=(image_size, image_size)),
    # shifts of up to 3 px; no flips (a mirrored digit is another symbol)
    dict(type='RandomCrop', crop_size=image_size, padding=3),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=(image_size, image_size)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

# the held-out split doubles as the test set
test_dataloader = val_dataloader
test_evaluator = val_evaluator
