import os
import re
import subprocess
import sys

# One intra-op thread for the suite and the tools it starts: the tests use
# tiny shapes, and on 2 shared cores OpenMP threads spin-waiting for each
# other (or for a second torchrun rank) made small convs ~100x slower
# (measured: 80 ms instead of 0.3 ms for a 64-channel 8x8 conv).
os.environ.setdefault('OMP_NUM_THREADS', '1')
# tools/run_tests.sh runs the files on two pytest-xdist workers: each gets
# its own torchrun port (tools/dist_common.sh reads PORT), so distributed
# tests running at the same time never meet on one
_WORKER = os.environ.get('PYTEST_XDIST_WORKER', '')
if _WORKER[2:].isdigit():
    os.environ.setdefault('PORT', str(29600 + 100 * int(_WORKER[2:])))

import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import runpy  # noqa: E402
from typing import Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
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


# ----------------------------------------------------------------------------
# running a tool (the one helper every test file uses)
#: run as ``python -c`` with ``block,list tool args...``: make the listed
#: modules unimportable (``sys.modules[name] = None``), then run the tool as
#: ``python tools/<tool>`` would
_BLOCKED_RUN = (
    'import os, runpy, sys\n'
    'blocked, tool = sys.argv[1], sys.argv[2]\n'
    'for name in filter(None, blocked.split(",")):\n'
    '    sys.modules[name] = None\n'
    'sys.path.insert(0, os.path.dirname(os.path.abspath(tool)))\n'
    'sys.argv = sys.argv[2:]\n'
    'runpy.run_path(tool, run_name="__main__")\n')


def tool_path(tool: str) -> str:
    """``tools/<tool>`` unless ``tool`` is a path already."""
    return tool if os.sep in str(tool) else os.path.join(TOOLS, tool)


def run_tool(tool: str, *args, cwd: str = ROOT, timeout: float = 600,
             block: Sequence[str] = (), env: Optional[dict] = None,
             check: bool = False) -> subprocess.CompletedProcess:
    """``python tools/<tool> ARGS`` (``bash`` for a ``.sh``) as a user runs
    it, in a separate process with one intra-op thread and this checkout
    (and ``tests/``, for probe modules) first on ``PYTHONPATH``.

    ``block``: modules that cannot be imported in that process (as if not
    installed). ``check``: fail the test with :func:`failure_report` unless
    the tool exits with 0.
    """
    path = tool_path(tool)
    if path.endswith('.sh'):
        cmd = ['bash', path]
    elif block:
        cmd = [sys.executable, '-c', _BLOCKED_RUN, ','.join(block), path]
    else:
        cmd = [sys.executable, path]
    full_env = dict(os.environ, OMP_NUM_THREADS='1',
                    PYTHONPATH=os.pathsep.join([ROOT, TESTS]), **(env or {}))
    proc = subprocess.run(cmd + [str(a) for a in args], cwd=str(cwd),
                          env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert_succeeded(proc)
    return proc


def call_tool(tool: str, *args, capsys=None) -> subprocess.CompletedProcess:
    """``tools/<tool> ARGS`` in this process (no interpreter start-up on the
    shared CPUs), reported as :func:`run_tool` reports a process. Output is
    read from ``capsys`` when given (pytest's fixture), else redirected."""
    from harness.cli import run_tool as run_main
    main = runpy.run_path(tool_path(tool))['main']
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    if capsys is not None:
        capsys.readouterr()
    # mmengine's loggers write to the stream they were created with (maybe
    # an earlier test's, closed by now; the tool may log through any of
    # them): point their console handlers at this call's output (capsys's
    # stdout, which is read below, or ``out``)
    MMLogger.get_current_instance()  # at least one
    streams = [h for logger in list(MMLogger._instance_dict.values())
               for h in logger.handlers if type(h) is logging.StreamHandler]
    before = [h.stream for h in streams]
    for handler in streams:
        # not setStream: it flushes the old one
        handler.stream = sys.stdout if capsys is not None else out
    try:
        with contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err), \
                pytest.raises(SystemExit) as exc:
            run_main(main, argv)
    finally:
        for handler, stream in zip(streams, before):
            handler.stream = stream
    if capsys is not None:
        captured = capsys.readouterr()
        out.write(captured.out)
        err.write(captured.err)
    return subprocess.CompletedProcess([tool, *argv], exc.value.code or 0,
                                       out.getvalue(), err.getvalue())


def tool_log(tool: str, *args, **options) -> str:
    """stdout + stderr of a successful :func:`run_tool`."""
    proc = run_tool(tool, *args, check=True, **options)
    return proc.stdout + proc.stderr


# ----------------------------------------------------------------------------
# a tiny classifier on a tiny image folder
#: images per class of :func:`write_image_folder`
IMAGES_PER_CLASS = 8
#: a RepVGG of widths 8..64, one block per stage (``arch=`` of RepVGGMM)
TINY_ARCH = dict(num_blocks=[1, 1, 1, 1],
                 width_factor=[0.125, 0.125, 0.125, 0.125])
A0_CONFIG = os.path.join(ROOT, 'configs', 'repvgg-a0_8xb32_in1k.py')

#: ``configs/repvgg-a0_8xb32_in1k.py`` with :data:`TINY_ARCH`, two classes
#: and mmpretrain's CustomDataset on :func:`write_image_folder`'s folder
TINY_CLS_CONFIG = """
_base_ = {base!r}
model = dict(
    backbone=dict(arch=dict(_delete_=True, num_blocks=[1, 1, 1, 1],
                            width_factor=[0.125, 0.125, 0.125, 0.125])),
    head=dict(num_classes=2, in_channels=64, topk=(1, )))
data_preprocessor = dict(num_classes=2)
_test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0,
    dataset=dict(_delete_=True, type='CustomDataset', data_root={data!r},
                 data_prefix='train', pipeline=_test_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(_delete_=True, type='CustomDataset', data_root={data!r},
                 data_prefix='train', pipeline=_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
param_scheduler = dict(T_max={epochs}, end={epochs})
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""


def write_image_folder(root: str,
                       images_per_class: int = IMAGES_PER_CLASS) -> str:
    """``root/train/class_{0,1}/*.png``: two classes of 32x32 noisy colour
    images (red, blue), as mmpretrain's CustomDataset reads them."""
    rng = np.random.default_rng(0)
    for label, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        folder = os.path.join(root, 'train', f'class_{label}')
        os.makedirs(folder)
        for i in range(images_per_class):
            noise = rng.integers(-30, 30, size=(32, 32, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(
                os.path.join(folder, f'{i}.png'))
    return root


def write_tiny_cls_config(path: str, data: str, epochs: int = 1,
                          batch_size: int = 2) -> str:
    """Write :data:`TINY_CLS_CONFIG` reading ``data`` to ``path``."""
    with open(path, 'w') as f:
        f.write(TINY_CLS_CONFIG.format(base=A0_CONFIG, data=data,
                                       epochs=epochs, batch_size=batch_size))
    return str(path)


#: :data:`TINY_CLS_CONFIG` with a random flip, the probe hook, and the
#: cosine schedule of four epochs cut at two
PROBED_CONFIG = """
_base_ = {base!r}
custom_imports = dict(imports=['repvgg_mm', 'train_tools_probe'],
                      allow_failed_imports=False)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
param_scheduler = dict(T_max=4, end=4)
custom_hooks = [dict(type='TrainProbeHook', out_dir={probe!r})]
"""


def write_probed_cls_config(root: str) -> Tuple[str, str]:
    """``(config, probe dir)`` in ``root``: :data:`PROBED_CONFIG` on two
    epochs of :func:`write_image_folder`'s images, batch 2."""
    data, probe = os.path.join(root, 'data'), os.path.join(root, 'probe')
    write_image_folder(data)
    os.makedirs(probe)
    base = write_tiny_cls_config(os.path.join(root, 'tiny_base.py'), data,
                                 epochs=2, batch_size=2)
    config = os.path.join(root, 'tiny_cls.py')
    with open(config, 'w') as f:
        f.write(PROBED_CONFIG.format(base=base, probe=probe))
    return config, probe
