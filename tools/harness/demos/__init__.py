"""Harness: the demos and the on-disk datasets they write.

Not part of the plugin: ``import repvgg_mm`` does not import it, and nothing
in the plugin imports it. ``tools/demo_digits.py`` and the ``make_*`` tools
call it.
"""
