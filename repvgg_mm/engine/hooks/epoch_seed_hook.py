"""Random state derived from (seed, epoch), so a resumed run is exact.

Why a resumed run with random augmentation drifted (mmengine 0.10.7,
``Runner.build_dataloader`` and ``Runner.resume``):

* dataloader workers are seeded once, by ``worker_init_fn`` with the run's
  seed, when they start. With ``persistent_workers=True`` they start once per
  run, so epoch 3 of an uninterrupted run continues the workers' random
  streams of epochs 1-2, while a run resumed at epoch 3 starts them afresh;
  without persistent workers every epoch replays the same stream (the same
  crops each epoch);
* the main process (``num_workers=0``, random layers) is re-seeded with the
  run's seed on resume, not put where the interrupted run was.

Before every training epoch this hook seeds Python's, numpy's and torch's
generators of the main process with a seed derived from (run seed, epoch)
and restarts the training dataloader's workers with such a seed, so epoch
``e`` sees the same random stream whether the run was interrupted or not.
"""
import logging
import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


def _can_restart_workers(loader) -> bool:
    """Whether :func:`_restart_workers` knows this DataLoader's layout.

    torch has no public way to restart persistent workers (they run
    ``worker_init_fn`` once; pytorch/pytorch#35795 left re-seeding open), so
    the hook stops them through the private ``_iterator`` /
    ``_shutdown_workers`` that every torch from 1.7 (``persistent_workers``)
    to 2.14 (checked) has; another layout gets a warning instead.
    """
    iterator = getattr(loader, '_iterator', None)
    return iterator is None or callable(
        getattr(iterator, '_shutdown_workers', None))


def _restart_workers(loader) -> None:
    """Stop the persistent workers; the next epoch starts them afresh."""
    iterator = getattr(loader, '_iterator', None)
    if iterator is not None:
        iterator._shutdown_workers()
        loader._iterator = None


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for ``epoch`` of a run seeded with ``seed``."""
    sequence = np.random.SeedSequence([int(seed) % 2**32, int(epoch)])
    return int(sequence.generate_state(1)[0])


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the main process and the train dataloader's workers per epoch
    (see the module doc). ``tools/train.py`` adds it to every run."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._worker_seed = None  # the run's seed of the workers
        self._warned = False

    def before_train_epoch(self, runner) -> None:
        seed = epoch_seed(runner.seed, runner.epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self._reseed_workers(runner.train_dataloader, runner.epoch)

    def _reseed_workers(self, loader, epoch: int) -> None:
        init_fn = getattr(loader, 'worker_init_fn', None)
        if not getattr(loader, 'num_workers', 0) or not (
                isinstance(init_fn, partial)
                and init_fn.func is mmengine_worker_init_fn):
            return  # no workers, or a user's own worker_init_fn
        if self._worker_seed is None:
            self._worker_seed = init_fn.keywords['seed']
        loader.worker_init_fn = partial(
            mmengine_worker_init_fn, *init_fn.args,
            **dict(init_fn.keywords,
                   seed=epoch_seed(self._worker_seed, epoch)))
        # persistent workers keep their first seed: start them again
        if _can_restart_workers(loader):
            _restart_workers(loader)
        elif not self._warned:
            self._warned = True
            print_log(
                f'EpochSeedHook: this torch {torch.__version__} DataLoader '
                f'cannot restart its persistent workers, so they keep the '
                f'seed of their first epoch and a resumed run may differ '
                f'from an uninterrupted one.', logger='current',
                level=logging.WARNING)
