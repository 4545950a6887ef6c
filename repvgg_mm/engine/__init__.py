from . import atomic_checkpoint, hooks, optim  # noqa: F401
