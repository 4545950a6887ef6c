"""Conversion logic of the tools and ``SwitchToDeployHook``; not imported
by ``import repvgg_mm`` (import the submodules)."""
