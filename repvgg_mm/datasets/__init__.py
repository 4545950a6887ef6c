"""Dataset helpers (writers of on-disk datasets for the demos).

Not imported by ``import repvgg_mm``: tools import what they need, e.g.
``from repvgg_mm.datasets.digits import write_digits_dataset``.
"""
