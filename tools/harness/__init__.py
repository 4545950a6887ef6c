"""The harness around the plugin: what the tools in ``tools/`` use and the
installed package never imports.

* :mod:`.cli`: the command-line layer (``error: ...`` + exit 2, the Runner
  flags);
* :mod:`.benchmark`: throughput benchmarking, the paper's figures, plots;
* :mod:`.demos`: the digits main job and the demo dataset writers.

The tools put this folder on ``sys.path`` by being run from it
(``python tools/X.py``); the tests add it in ``tests/conftest.py``.
"""
