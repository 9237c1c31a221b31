"""astrogym: reinforcement-learning environments for running observatories.

Importing the package registers every environment id with Gymnasium, so both
``import astrogym; gym.make("astrogym/InterferometerLock-v0")`` and
``gym.make("astrogym:astrogym/InterferometerLock-v0")`` work.
"""

from astrogym.envs import ENV_SPECS, register_envs

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_SPECS", "register_envs", "__version__"]
