"""The exceptions this package raises for input a user can fix.

Every message names the problem and the fix in terms of the API's
arguments (``unsafe_load=True``, ``out``); the command-line tools print it
as one ``error: ...`` paragraph and exit with status 2.

=========================  ==================================================
exception                  raised for
=========================  ==================================================
:class:`RepVGGMMError`     the base of all of them
:class:`ConfigError`       a config, an argument or a model that cannot work
:class:`CheckpointError`   a checkpoint that cannot be read or does not fit
:class:`OutputError`       an output path that must not or cannot be written
:class:`VerificationError` two forms of a model that disagree, or NaN/Inf
:class:`MissingDependency` an optional extra (``[deploy]``) not installed
=========================  ==================================================
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
