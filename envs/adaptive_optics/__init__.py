"""AdaptiveOptics: a single-conjugate adaptive-optics loop with numba-compiled physics."""

from astrogym.envs.adaptive_optics.config import AOConfig

__all__ = ["AOConfig"]
