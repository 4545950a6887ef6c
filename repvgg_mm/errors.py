"""Exceptions for input a user can fix: each message names the problem and
the fix (a tool prints it as one ``error: ...`` paragraph, exit status 2)."""


class RepVGGMMError(Exception):
    """A problem with the caller's input; the message says how to fix it."""


class ConfigError(RepVGGMMError, ValueError):
    """A config, argument or model that cannot do what was asked."""


class CheckpointError(RepVGGMMError, RuntimeError):
    """A checkpoint that cannot be read, is unsafe, or does not fit."""


class OutputError(RepVGGMMError, OSError):
    """An output that must not be written there, or whose write failed."""


class VerificationError(RepVGGMMError):
    """Two forms of a model disagree beyond the tolerance, or give NaN/Inf."""


class MissingDependency(RepVGGMMError, ImportError):
    """An optional dependency is missing; the message names its extra."""
