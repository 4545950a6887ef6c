from . import atomic_writes, hooks, optim  # noqa: F401
