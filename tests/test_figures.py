"""Published figures (issue 2.7): deploy params and MACs of every arch."""
import pytest

from repvgg_mm.figures import (PAPER_FIGURES, REFERENCE_MEASURED,
                               REFERENCE_TRAIN_PARAMS, arch_figures)

ARCHS = sorted(REFERENCE_MEASURED)


@pytest.fixture(scope='module')
def figures():
    return {arch: arch_figures(arch) for arch in ARCHS}


@pytest.mark.parametrize('arch', sorted(PAPER_FIGURES))
def test_deploy_params_match_the_paper(figures, arch):
    params = figures[arch]['deploy_params_m']
    assert abs(params - PAPER_FIGURES[arch][0]) <= 0.02, params


@pytest.mark.parametrize('arch', ARCHS)
def test_deploy_macs_match_reference_within_one_percent(figures, arch):
    macs = figures[arch]['deploy_macs_g']
    measured = REFERENCE_MEASURED[arch][1]
    assert abs(macs - measured) <= 0.01 * measured, macs
    if arch in PAPER_FIGURES:  # the paper rounds MACs to 0.1 G
        assert round(macs, 1) == PAPER_FIGURES[arch][1], macs


def test_d2se_params_match_reference(figures):
    assert abs(figures['d2se']['deploy_params_m'] - 120.39) <= 0.02


@pytest.mark.parametrize('arch', sorted(REFERENCE_TRAIN_PARAMS))
def test_train_form_params(figures, arch):
    params = figures[arch]['train_params_m']
    assert abs(params - REFERENCE_TRAIN_PARAMS[arch]) <= 0.02, params
