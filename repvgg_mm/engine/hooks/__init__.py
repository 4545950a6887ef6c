# hooks registered in mmengine's HOOKS
