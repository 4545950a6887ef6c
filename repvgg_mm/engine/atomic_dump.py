"""mmengine's ``DumpResults`` (``tools/test.py --out``) written atomically:
in mmengine 0.10.7 it pickles straight into ``out_file_path``, so a kill or
a full disk during the dump leaves a truncated file in place of the user's.
"""
from mmengine.evaluator.metric import DumpResults
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmengine.registry import METRICS

from ..io.atomic import atomic_output


@METRICS.register_module()
class AtomicDumpResults(DumpResults):
    """``DumpResults`` whose file appears only when it is complete."""

    def compute_metrics(self, results: list) -> dict:
        with atomic_output(self.out_file_path) as tmp:
            dump(results, tmp, file_format='pkl')
        print_log(f'Results has been saved to {self.out_file_path}.',
                  logger='current')
        return {}
