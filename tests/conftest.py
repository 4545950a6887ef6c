import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import repvgg_mm  # noqa: E402,F401  (registers the modules)

#: converted vs training form, relative to the output's magnitude (issue 2)
REL_TOL = 1e-4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
