"""Conversion logic behind ``tools/convert_deploy.py``,
``tools/convert_weights.py`` and ``SwitchToDeployHook``.

Not imported by ``import repvgg_mm``; import the submodules directly.
"""
