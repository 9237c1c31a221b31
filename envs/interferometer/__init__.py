"""InterferometerLock: angular control of the arm-cavity test masses of a LIGO-class detector."""

from astrogym.envs.interferometer.config import InterferometerConfig

__all__ = ["InterferometerConfig"]
