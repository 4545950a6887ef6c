from .epoch_seed_hook import EpochSeedHook
from .switch_to_deploy_hook import SwitchToDeployHook

__all__ = ['EpochSeedHook', 'SwitchToDeployHook']
