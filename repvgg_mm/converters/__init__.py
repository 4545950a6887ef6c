"""Conversion logic of the tools and ``SwitchToDeployHook`` (submodules)."""
