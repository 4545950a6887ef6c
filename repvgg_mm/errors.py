"""Exceptions for input a user can fix, each naming the problem and the fix
(a tool prints one ``error: ...``, exit status 2); the jobs' number checks."""


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


def positive_int(value, name: str) -> None:
    """Refuse ``value`` unless a whole number >= 1 (``name``: as written)."""
    if type(value) is not int or value < 1:  # a bool is no count
        raise ConfigError(f'{name} must be a positive whole number, got '
                          f'{value!r}.')


def check_shape(shape) -> None:
    """``shape`` is None or H W, both positive whole numbers."""
    if shape is not None and (len(shape) != 2 or not all(
            type(s) is int and s >= 1 for s in shape)):
        raise ConfigError(f'`shape` takes H W (positive), got {list(shape)}')
