"""Random state derived from (seed, epoch), so a resumed run is exact:
mmengine 0.10.7 seeds dataloader workers once when they start (persistent
workers: once per run, so a resumed run restarts their streams) and re-seeds
the main process with the run's seed on resume."""
import logging
from functools import partial

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import set_random_seed


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for ``epoch`` of a run seeded with ``seed``."""
    sequence = np.random.SeedSequence([int(seed) % 2**32, int(epoch)])
    return int(sequence.generate_state(1)[0])


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the main process and the train dataloader's workers per epoch;
    training adds it to every run."""

    priority = 'VERY_HIGH'
    _worker_seed = None  # the run's seed of the workers
    _warned = False

    def before_train_epoch(self, runner) -> None:
        set_random_seed(epoch_seed(runner.seed, runner.epoch))
        self._reseed_workers(runner.train_dataloader, runner.epoch)

    def _reseed_workers(self, loader, epoch: int) -> None:
        init_fn = getattr(loader, 'worker_init_fn', None)
        if not getattr(loader, 'num_workers', 0) or not (
                isinstance(init_fn, partial)
                and init_fn.func is mmengine_worker_init_fn):
            return  # no workers, or a user's own worker_init_fn
        if self._worker_seed is None:
            self._worker_seed = init_fn.keywords['seed']
        # a partial of a partial is flattened: still mmengine's function
        loader.worker_init_fn = partial(
            init_fn, seed=epoch_seed(self._worker_seed, epoch))
        # persistent workers keep their first seed: stop them, the epoch
        # starts them afresh. torch has no public way (pytorch#35795), so
        # the private _iterator._shutdown_workers (torch 1.7 - 2.14) is used
        iterator = getattr(loader, '_iterator', None)
        if callable(getattr(iterator, '_shutdown_workers', None)):
            iterator._shutdown_workers()
            loader._iterator = None
        elif iterator is not None and not self._warned:
            self._warned = True
            print_log(
                f'EpochSeedHook: this torch {torch.__version__} DataLoader '
                f'cannot restart its persistent workers, so they keep the '
                f'seed of their first epoch and a resumed run may differ '
                f'from an uninterrupted one.', logger='current',
                level=logging.WARNING)
