from . import atomic_checkpoint, atomic_dump, hooks, optim  # noqa: F401
