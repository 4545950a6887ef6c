"""Stress check (not part of the suite): do 2-rank gloo runs exit cleanly?

    python tests/stress_dist_exit.py [--runs 50] [--load 2]

Each run starts 2 CPU ranks with torchrun. Every rank wraps a small model in
DistributedDataParallel and keeps it alive through a reference cycle, as
mmengine's Runner does, then ends in one of two orders:

* ``old``: destroy the process group while the wrapper is still alive (it
  is collected at interpreter shutdown). This is what tools/train.py and
  tools/test.py did before ``engine.distributed.runner_teardown``.
* ``teardown``: ``engine.distributed.runner_teardown``, which frees the
  wrapper and
  then destroys the group.

``--load N`` keeps N busy-looping processes running meanwhile, because the
abort shows up under CPU load. The script prints how many runs of each order
failed, and how (exit code, "terminate called ..." lines).
"""
import argparse
import os
import random
import subprocess
import sys
import time


def worker(order: str) -> None:
    import torch
    import torch.distributed as dist
    from conftest import ddp_held_by_a_cycle  # puts ROOT on sys.path

    from repvgg_mm.engine.distributed import runner_teardown

    def body():
        owner = ddp_held_by_a_cycle(torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)))
        with torch.no_grad():
            owner['model'].module(torch.randn(2, 3, 16, 16))
        dist.broadcast_object_list([dist.get_rank()], 0)
        if dist.get_rank() == 0:  # ranks reach the end at different times
            time.sleep(random.random() * 0.3)

    dist.init_process_group('gloo')
    if order == 'teardown':
        with runner_teardown():
            body()
    else:
        body()
        dist.destroy_process_group()


def drive(runs: int, load: int, port: int) -> int:
    burners = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
               for _ in range(load)]
    failed = {}
    try:
        for order in ('old', 'teardown'):
            failed[order] = []
            for i in range(runs):
                proc = subprocess.run(
                    [sys.executable, '-m', 'torch.distributed.run',
                     '--nproc_per_node=2', f'--master_port={port}',
                     __file__, '--worker', order],
                    capture_output=True, text=True, timeout=300,
                    env=dict(os.environ, OMP_NUM_THREADS='1'))
                if proc.returncode:
                    why = sorted({line.strip() for line in
                                  proc.stderr.splitlines()
                                  if 'terminate called' in line
                                  or 'exitcode  : -' in line})
                    failed[order].append(why)
                print(f'{order:7s} run {i + 1}/{runs}: exit '
                      f'{proc.returncode}', flush=True)
    finally:
        for burner in burners:
            burner.kill()
    for order, fails in failed.items():
        print(f'{order}: {len(fails)} of {runs} runs failed')
        for why in fails:
            print('   ', '; '.join(why))
    return 1 if failed['teardown'] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument('--load', type=int, default=2,
                        help='busy-looping processes to run meanwhile')
    parser.add_argument('--port', type=int, default=29655)
    parser.add_argument('--worker', choices=('old', 'teardown'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    return drive(args.runs, args.load, args.port)


if __name__ == '__main__':
    sys.exit(main())
