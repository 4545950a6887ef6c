"""SwitchToDeployHook with a real mmengine Runner, a tiny dataset and metrics.

* ``Runner.test()``: the test runs on the converted model, after the
  checkpoint is loaded, and gives the scores of the unconverted model.
* Training with ``EMAHook`` and validation every epoch: validation runs on a
  converted copy carrying the EMA weights (checked against the EMA-weighted
  training form, which differs from the raw weights), and the trained and
  EMA weights end bit-identical to a run without the hook.
* After training, ``epoch_N_deploy.pth`` and the deploy config are written
  and reproduce the last checkpoint's outputs.
"""
import copy
import os.path as osp
import uuid

import pytest
import torch
from conftest import REL_TOL
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import EMAHook, Hook
from mmengine.registry import DATASETS, HOOKS, METRICS
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from harness.fusion_check import randomize_norm_stats_
from repvgg_mm import count_repvgg_blocks
from repvgg_mm.converters.config_model import build_model
from repvgg_mm.engine.hooks import SwitchToDeployHook
from repvgg_mm.io.checkpoint import load_checkpoint_file
from repvgg_mm.utils.verify import relative_errors

NUM_CLASSES = 3
MODEL = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3,
                           mean=[127.5] * 3, std=[64.0] * 3),
    backbone=dict(type='RepVGGMM',
                  arch=dict(num_blocks=[2, 2, 1, 1], width_factor=[0.125] * 4,
                            groups=2)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))

#: what the probes saw, per runner
RECORDS = {}


@DATASETS.register_module(force=True)
class TinyImages(Dataset):
    """8 fixed random 3x24x24 images, 3 classes."""

    METAINFO = dict(classes=('a', 'b', 'c'))

    def __init__(self, seed=0, num=8):
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (num, 3, 24, 24), generator=gen,
                                    dtype=torch.uint8)
        self.labels = torch.randint(0, NUM_CLASSES, (num, ), generator=gen)

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return dict(inputs=self.images[i],
                    data_samples=DataSample().set_gt_label(self.labels[i]))


@METRICS.register_module(force=True)
class RecordScores(BaseMetric):
    """Stores the predicted scores (the metric is their count)."""

    def __init__(self, key, **kwargs):
        super().__init__(**kwargs)
        self.key = key

    def process(self, data_batch, data_samples):
        self.results += [s['pred_score'].clone() for s in data_samples]

    def compute_metrics(self, results):
        RECORDS.setdefault(self.key, []).append(torch.stack(results))
        return dict(num=len(results))


@HOOKS.register_module(force=True)
class ProbeHook(Hook):
    """Sees the model the loops use, and the EMA-weighted training form."""

    priority = 'BELOW_NORMAL'  # after EMAHook (NORMAL), before the deploy hook

    def __init__(self, key):
        self.key = key

    def _record(self, name, value):
        RECORDS.setdefault(f'{self.key}/{name}', []).append(value)

    def before_val_epoch(self, runner):
        # EMAHook has swapped the EMA weights in; the deploy hook runs next.
        model = copy.deepcopy(runner.model).eval()
        scores = [torch.stack([s.pred_score for s in model.val_step(batch)])
                  for batch in runner.val_dataloader]
        self._record('train_form_scores', torch.cat(scores))
        ema = [h for h in runner.hooks if isinstance(h, EMAHook)]
        if ema:  # the raw weights sit in the EMA model while swapped
            raw = copy.deepcopy(ema[0].ema_model.module).eval()
            scores = [torch.stack([s.pred_score for s in raw.val_step(b)])
                      for b in runner.val_dataloader]
            self._record('raw_scores', torch.cat(scores))

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._record('fused_in_loop', count_repvgg_blocks(runner.model, True))

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._record('fused_in_loop', count_repvgg_blocks(runner.model, True))

    # after_val / after_test follow every hook's after_*_epoch
    def after_val(self, runner):
        self._record('fused_after', count_repvgg_blocks(runner.model, True))

    def after_test(self, runner):
        self._record('fused_after', count_repvgg_blocks(runner.model, True))


def loader(seed):
    return dict(batch_size=4, num_workers=0,
                dataset=dict(type='TinyImages', seed=seed),
                sampler=dict(type='DefaultSampler', shuffle=False))


def make_runner(work_dir, key, hooks, **kwargs):
    cfg = Config(dict(
        model=copy.deepcopy(MODEL), work_dir=str(work_dir),
        experiment_name=f'{key}_{uuid.uuid4().hex[:8]}',
        default_scope='mmpretrain', log_level='WARNING',
        custom_hooks=hooks + [dict(type='ProbeHook', key=key)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), **kwargs))
    return Runner.from_cfg(cfg)


@pytest.fixture(scope='module')
def test_checkpoint(tmp_path_factory):
    """Random weights and BN statistics, as a Runner test would load."""
    torch.manual_seed(123)
    model = build_model(Config(dict(model=MODEL, default_scope='mmpretrain')))
    randomize_norm_stats_(model, seed=5)
    path = tmp_path_factory.mktemp('ckpt') / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return str(path)


def run_test(tmp_path, key, hooks, checkpoint):
    runner = make_runner(
        tmp_path / key, key, hooks, load_from=checkpoint,
        test_dataloader=loader(seed=1),
        test_evaluator=[dict(type='Accuracy', topk=(1, )),
                        dict(type='RecordScores', key=key)],
        test_cfg=dict())
    metrics = runner.test()
    return runner, metrics, RECORDS[key][-1]


def test_runner_test_uses_converted_model_after_loading(tmp_path,
                                                        test_checkpoint):
    _, ref_metrics, ref = run_test(tmp_path, 'plain', [], test_checkpoint)
    runner, metrics, scores = run_test(
        tmp_path, 'deploy', [dict(type='EMAHook'),
                             dict(type='SwitchToDeployHook')], test_checkpoint)
    assert RECORDS['plain/fused_in_loop'] == [0, 0]
    assert RECORDS['deploy/fused_in_loop'] == [7, 7]  # 2 batches, 7 blocks
    assert RECORDS['deploy/fused_after'] == [0]  # original model restored
    assert count_repvgg_blocks(runner.model, deployed=False) == 7
    assert metrics == ref_metrics
    assert relative_errors(ref, scores)[0][1] <= REL_TOL
    # the scores are those of the checkpoint, not of a random init
    torch.manual_seed(0)
    _, _, random_init = run_test(tmp_path, 'noload', [], None)
    assert relative_errors(ref, random_init)[0][1] > 1e-2


def run_training(tmp_path, key, hooks):
    runner = make_runner(
        tmp_path / key, key, hooks,
        train_dataloader=dict(loader(seed=2),
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        val_dataloader=loader(seed=3),
        val_evaluator=dict(type='RecordScores', key=key), val_cfg=dict())
    runner.train()
    return runner


def test_validation_with_ema_on_a_converted_copy(tmp_path):
    ema = dict(type='EMAHook', momentum=0.5)
    plain = run_training(tmp_path, 'ema', [ema])
    runner = run_training(tmp_path, 'ema_deploy',
                          [ema, dict(type='SwitchToDeployHook')])
    assert RECORDS['ema/fused_in_loop'] == [0, 0, 0, 0]
    assert RECORDS['ema_deploy/fused_in_loop'] == [7, 7, 7, 7]
    assert RECORDS['ema_deploy/fused_after'] == [0, 0]
    for epoch in range(2):
        val = RECORDS['ema_deploy'][epoch]
        train_form = RECORDS['ema_deploy/train_form_scores'][epoch]
        raw = RECORDS['ema_deploy/raw_scores'][epoch]
        # the converted copy carries the EMA weights ...
        assert relative_errors(train_form, val)[0][1] <= REL_TOL
        # ... which are not the raw weights
        assert relative_errors(raw, val)[0][1] > 1e-2
        # and validating on the training form gives the same scores
        assert relative_errors(RECORDS['ema'][epoch], val)[0][1] <= REL_TOL
    # training and EMA continue bit-identically with the hook
    ema_hooks = [[h for h in r.hooks if isinstance(h, EMAHook)][0]
                 for r in (plain, runner)]
    for a, b in ((plain.model, runner.model),
                 (ema_hooks[0].ema_model, ema_hooks[1].ema_model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert count_repvgg_blocks(runner.model, deployed=False) == 7


def test_deploy_checkpoint_after_training(tmp_path):
    runner = run_training(tmp_path, 'save', [dict(type='EMAHook',
                                                  momentum=0.5),
                                             dict(type='SwitchToDeployHook')])
    work_dir = tmp_path / 'save'
    last = load_checkpoint_file(str(work_dir / 'epoch_2.pth'))
    deploy = load_checkpoint_file(str(work_dir / 'epoch_2_deploy.pth'))
    assert deploy['meta']['epoch'] == 2
    assert deploy['meta']['repvgg_mm']['source'] == 'epoch_2.pth'
    assert 'optimizer' not in deploy and 'ema_state_dict' not in deploy
    cfg_path = osp.join(str(work_dir), 'config_deploy.py')
    deployed = build_model(Config.fromfile(cfg_path))
    deployed.load_state_dict(deploy['state_dict'], strict=True)
    trained = copy.deepcopy(runner.model)
    # with EMA, the last checkpoint's state_dict holds the EMA weights
    trained.load_state_dict(last['state_dict'], strict=True)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        ref = trained.eval()(x, mode='tensor')
        out = deployed.eval()(x, mode='tensor')
    assert count_repvgg_blocks(deployed, deployed=True) == 7
    assert relative_errors(ref, out)[0][1] <= REL_TOL


def test_hook_refuses_a_model_without_repvgg(tmp_path):
    runner = make_runner(
        tmp_path, 'resnet', [dict(type='SwitchToDeployHook')],
        test_dataloader=loader(seed=1),
        test_evaluator=dict(type='Accuracy'), test_cfg=dict())
    runner.model.backbone = torch.nn.Identity()  # no RepVGG block left
    with pytest.raises(ValueError, match='holds no RepVGG block'):
        runner.test()


def test_hook_priority_is_after_ema():
    from mmengine.runner import get_priority
    assert get_priority(SwitchToDeployHook.priority) > get_priority(
        EMAHook.priority)
