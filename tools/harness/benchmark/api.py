"""Benchmarking a model's training form against its deployed form.

:func:`benchmark` is what ``tools/benchmark_fps.py`` runs: it checks the
options, times everything in alternating rounds
(:func:`repvgg_mm.benchmark.run.run_benchmark`) and returns the JSON-ready
record (written atomically to ``json_out`` when given).
"""
import shlex
import sys
from typing import Optional, Sequence

import torch

from repvgg_mm.errors import ConfigError
from repvgg_mm.io.output_guard import guard_output

from .report import write_json
from .run import Options, run_benchmark
from .serving import Serving, parse_serving


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f'--device {name}: {exc}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'--device {name}: CUDA is not available on this '
                          f'machine; use --device cpu.')
    if device.type not in ('cpu', 'cuda'):
        raise ConfigError(f'--device {name}: only cpu and cuda are supported.')
    return device


def benchmark(config: str,
              checkpoint: Optional[str] = None,
              baselines: Sequence[str] = (),
              batch_size: Optional[int] = None,
              shape: Optional[Sequence[int]] = None,
              warmup: int = 2,
              iters: int = 5,
              rounds: int = 3,
              device: str = 'cpu',
              threads: Optional[int] = None,
              channels_last: bool = False,
              jit: bool = False,
              compile: bool = False,
              amp: Optional[str] = None,
              best: bool = False,
              candidates: Optional[Sequence[str]] = None,
              ceiling: bool = True,
              gemm: Optional[bool] = None,
              cfg_options: Optional[dict] = None,
              json_out: Optional[str] = None,
              unsafe_load: bool = False,
              command: Optional[str] = None) -> dict:
    """Time ``config`` (training and deployed form) and ``baselines``.

    ``shape``: H W or one size; ``candidates``: serving names tried by
    ``best`` (e.g. ``'channels_last+jit'``). Returns the record that
    :func:`repvgg_mm.benchmark.report.format_report` prints.
    """
    if gemm is not None:  # the earlier name of ``ceiling``
        ceiling = gemm
    if checkpoint and checkpoint.endswith('.py'):
        raise ConfigError(
            f'"{checkpoint}" looks like a config, not a checkpoint. Pass '
            f'more models with --baseline {checkpoint}.')
    dev = _device(device)
    serving = Serving(channels_last=channels_last, jit=jit, compile=compile,
                      amp=amp)
    if serving.jit and dev.type != 'cpu':
        raise ConfigError('--jit (oneDNN freezing) is for --device cpu; use '
                          '--compile on GPUs.')
    tried = None
    if candidates:
        if not best:
            raise ConfigError('--candidates only makes sense with --best.')
        try:
            tried = [parse_serving(name) for name in candidates]
        except ValueError as exc:
            raise ConfigError(f'--candidates: {exc}') from None
    if shape is not None:
        if len(shape) not in (1, 2):
            raise ConfigError(f'--shape takes H W or one size, got {shape}')
        shape = tuple(shape) * (3 - len(shape))
    if json_out:
        guard_output(json_out, '--json', {'CHECKPOINT': checkpoint,
                                          'CONFIG': config})
    if threads:
        torch.set_num_threads(threads)
    opts = Options(
        sources=[config] + list(baselines), checkpoint=checkpoint,
        batch_size=batch_size, shape=shape, warmup=warmup, iters=iters,
        rounds=rounds, device=str(dev), serving=serving, best=best,
        candidates=tried, cfg_options=cfg_options, ceiling=ceiling,
        unsafe_load=unsafe_load)
    record = run_benchmark(opts)
    record['command'] = command or shlex.join(['python'] + sys.argv)
    if json_out:
        write_json(record, json_out)
    return record
