import os
import sys

# One intra-op thread for the suite and the tools it starts: the tests use
# tiny shapes, and on 2 shared cores OpenMP threads spin-waiting for each
# other (or for a second torchrun rank) made small convs ~100x slower
# (measured: 80 ms instead of 0.3 ms for a 64-channel 8x8 conv).
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

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
