import os
import re
import subprocess
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
#: the harness (``tools/harness``) is importable as ``harness``, as it is for
#: the tools, which run from ``tools/``
TOOLS = os.path.join(ROOT, 'tools')
for path in (TOOLS, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

import repvgg_mm  # noqa: E402,F401  (registers the modules)

#: converted vs training form, relative to the output's magnitude (issue 2)
REL_TOL = 1e-4

#: lines of a tool's output that say why it failed (torchrun's own report
#: only says which rank died and by which signal)
_CAUSE = re.compile(r'error|terminate called|what\(\)|fatal|abort|'
                    r'exception|exitcode|signal', re.IGNORECASE)


def failure_report(proc: subprocess.CompletedProcess) -> str:
    """Why a tool run failed, cause first: its exit status, the lines that
    name an error (of every rank), then the tails of stderr and stdout."""
    output = proc.stderr + '\n' + proc.stdout
    causes = [line for line in output.splitlines() if _CAUSE.search(line)]
    return '\n'.join([f'exit status {proc.returncode}; lines naming the '
                      f'cause:', *causes[:40], '--- stderr tail:',
                      proc.stderr[-2500:], '--- stdout tail:',
                      proc.stdout[-1500:]])


def assert_succeeded(proc: subprocess.CompletedProcess) -> None:
    """Fail with :func:`failure_report` (in full: pytest would truncate an
    assertion message to 8 lines) unless the tool exited with 0."""
    if proc.returncode != 0:
        pytest.fail(failure_report(proc), pytrace=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def ddp_held_by_a_cycle(module: torch.nn.Module) -> dict:
    """``{'model': DDP(module)}`` (CPU, needs a process group) that only the
    garbage collector frees: the dict refers to itself, as mmengine's Runner
    and its loops refer to each other and keep the wrapped model alive."""
    from torch.nn.parallel import DistributedDataParallel
    owner = {'model': DistributedDataParallel(module, device_ids=None)}
    owner['self'] = owner
    return owner


@pytest.fixture
def logged():
    """The messages logged to mmengine's current logger during the test
    (the project reports progress there, as OpenMMLab tools do)."""
    import logging

    from mmengine.logging import MMLogger

    class Collect(logging.Handler):

        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
