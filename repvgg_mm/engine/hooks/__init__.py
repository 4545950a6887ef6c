# hooks registered in mmengine's HOOKS
from .switch_to_deploy_hook import SwitchToDeployHook

__all__ = ['SwitchToDeployHook']
