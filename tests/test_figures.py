"""Published figures: deploy params and MACs of every arch (paper Table 4/5).

The paper rounds MACs to 0.1 G. The two-decimal figures below were counted
with the same counter (mmengine 0.10.7's FlopAnalyzer) on mmpretrain 1.2.0's
own RepVGG classifiers, 224x224, 1000 classes; ours must agree within 1 %.
The train-form (unconverted) parameter counts are not published; they are
mmpretrain 1.2.0's too.
"""
import pytest

from harness.benchmark.arch_figures import arch_figures
from harness.benchmark.paper import paper_arch_figures

#: builds every arch at 224 (about 20 s): the full suite only
pytestmark = pytest.mark.slow

PAPER = paper_arch_figures()
#: mmpretrain 1.2.0 RepVGG: deploy params (M), MACs (G)
MMPRETRAIN = {
    'a0': (8.31, 1.36), 'a1': (12.79, 2.36), 'a2': (25.50, 5.12),
    'b0': (14.34, 3.06), 'b1': (51.83, 11.82), 'b1g2': (41.36, 8.81),
    'b1g4': (36.13, 7.31), 'b2': (80.32, 18.38), 'b2g4': (55.78, 11.33),
    'b3': (110.96, 26.21), 'b3g4': (75.63, 16.06), 'd2se': (120.39, 32.83),
}
#: mmpretrain 1.2.0 RepVGG, training form: params (M)
MMPRETRAIN_TRAIN_PARAMS = {'a0': 9.11, 'b0': 15.82, 'b1': 57.42}
ARCHS = sorted(MMPRETRAIN)


@pytest.fixture(scope='module')
def figures():
    return {arch: arch_figures(arch) for arch in ARCHS}


def test_the_paper_table_has_the_eleven_published_archs():
    assert sorted(PAPER) == sorted(set(MMPRETRAIN) - {'d2se'})


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_deploy_params_match_the_paper(figures, arch):
    params = figures[arch]['deploy_params_m']
    assert abs(params - PAPER[arch][0]) <= 0.02, params


@pytest.mark.parametrize('arch', ARCHS)
def test_deploy_macs_match_mmpretrain_within_one_percent(figures, arch):
    macs = figures[arch]['deploy_macs_g']
    measured = MMPRETRAIN[arch][1]
    assert abs(macs - measured) <= 0.01 * measured, macs
    if arch in PAPER:  # the paper rounds MACs to 0.1 G
        assert round(macs, 1) == PAPER[arch][1], macs


def test_d2se_params_match_mmpretrain(figures):
    assert abs(figures['d2se']['deploy_params_m'] - 120.39) <= 0.02


@pytest.mark.parametrize('arch', sorted(MMPRETRAIN_TRAIN_PARAMS))
def test_train_form_params(figures, arch):
    params = figures[arch]['train_params_m']
    assert abs(params - MMPRETRAIN_TRAIN_PARAMS[arch]) <= 0.02, params
