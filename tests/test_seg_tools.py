"""The segmentation workflow of the README through the real command-line
tools: make the Cityscapes-layout demo data, train with tools/train.py, test
with tools/test.py (plain and with SwitchToDeployHook), convert with
tools/convert_deploy.py --verify and test the deploy checkpoint with the
written deploy config. The mIoU must be the same in every form.
"""
import os.path as osp
import re

import pytest
from conftest import ROOT, tool_log

DEMO = osp.join(ROOT, 'configs', 'demo',
                'pspnet_repvgg-tiny_cityscapes-demo.py')
ITERS = 8

BASE_CFG = """
_base_ = {demo!r}
data_root = {data!r}
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}))
randomness = dict(seed=0)
"""
HOOK_CFG = """
_base_ = {base!r}
custom_hooks = [dict(type='SwitchToDeployHook')]
"""


def metrics(log: str):
    found = re.findall(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)', log)
    assert found, log[-3000:]
    return tuple(float(v) for v in found[-1])


@pytest.mark.slow
def test_train_test_convert_test_through_the_tools(tmp_path):
    data = tmp_path / 'data'
    tool_log('make_cityscapes_demo.py', data, '--num-train', 4, '--num-val',
             2, cwd=tmp_path)
    base = tmp_path / 'demo_cfg.py'
    base.write_text(BASE_CFG.format(demo=DEMO, data=str(data), iters=ITERS))
    hooked = tmp_path / 'demo_hook_cfg.py'
    hooked.write_text(HOOK_CFG.format(base=str(base)))

    work = tmp_path / 'work'
    tool_log('train.py', base, '--work-dir', work, cwd=tmp_path)
    ckpt = work / f'iter_{ITERS}.pth'
    assert ckpt.is_file()

    test_tool = 'test.py'
    trained = metrics(tool_log(test_tool, base, ckpt, '--work-dir',
                               tmp_path / 't1', cwd=tmp_path))
    hook_log = tool_log(test_tool, hooked, ckpt, '--work-dir',
                        tmp_path / 't2', cwd=tmp_path)
    assert ('SwitchToDeployHook: test runs on a converted copy of the model '
            '(11 RepVGG blocks fused)') in hook_log
    via_hook = metrics(hook_log)

    out = tmp_path / 'deploy' / 'seg_deploy.pth'
    log = tool_log('convert_deploy.py', base, ckpt, out, '--verify',
                   cwd=tmp_path)
    assert 'verify: OK' in log
    deploy_cfg = out.with_suffix('.py')
    assert out.is_file() and deploy_cfg.is_file()
    deployed = metrics(tool_log(test_tool, deploy_cfg, out, '--work-dir',
                                tmp_path / 't3', cwd=tmp_path))

    assert trained[1] > 0
    assert via_hook == trained
    assert deployed == trained
