"""Harness: throughput benchmarking of training-form vs deployed models.

Used by ``tools/benchmark_fps.py`` and ``tools/plot_speed_accuracy.py``; not
imported by ``import repvgg_mm`` (it pulls in the analysis and plotting
stacks). Pieces, one concept per module:

* :mod:`.protocol`: the paper's speed protocol (batch, input size per task);
* :mod:`.sources`: build a model from an mm config or a timm name;
* :mod:`.forms`: the training form and the deployed form of a model;
* :mod:`.serving`: ways to run a deployed model faster (channels_last,
  TorchScript freezing, torch.compile, ...);
* :mod:`.complexity`: parameters and MACs (mmengine's analysis tools);
* :mod:`.ceiling`: the precision ceilings of this CPU (a conv stack);
* :mod:`.run`: one benchmark run, from sources to the record;
* (timing rounds and their statistics: :mod:`repvgg_mm.runtime.rounds`,
  shared with ``tools/deploy.py``);
* :mod:`.report`: the table, the comparisons and the JSON record;
* :mod:`.paper`: the paper's published figures (``paper_results.json``);
* :mod:`.arch_figures`: parameters and MACs of every RepVGG classifier;
* :mod:`.plot`: the Figure-1-style speed/accuracy plot.
"""
