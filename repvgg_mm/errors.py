"""The exceptions this package raises for input a user can fix; each message
names the problem and the fix (the tools print it as one ``error: ...``
paragraph and exit with status 2). All derive from :class:`RepVGGMMError`.
"""


class RepVGGMMError(Exception):
    """A problem with the caller's input; the message says how to fix it."""


class ConfigError(RepVGGMMError, ValueError):
    """A config, argument or model that cannot do what was asked."""


class CheckpointError(RepVGGMMError, RuntimeError):
    """A checkpoint that cannot be read, is unsafe, or does not fit."""


class OutputError(RepVGGMMError, OSError):
    """An output that must not be written there (it is an input, a special
    file, unwritable, ...) or whose write failed (e.g. the disk is full)."""


class VerificationError(RepVGGMMError):
    """Two forms of a model disagree beyond the tolerance, or give NaN/Inf."""


class MissingDependency(RepVGGMMError, ImportError):
    """An optional dependency is not installed; the message names the extra
    that brings it."""
