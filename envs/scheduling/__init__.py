"""One telescope choosing its next target: ``astrogym/TelescopeScheduling-v0``.

The pieces are separate so that the network env (several sites, one target pool) reuses them:
:mod:`sites` (where), :mod:`telescope` (how fast it moves), :mod:`catalogue` (what to observe),
:mod:`night` (precomputed ephemerides per site and night), :mod:`weather` (seeing and clouds),
:mod:`photometry` (exposure time calculator, the one SNR formula), :mod:`features` (the observation's
columns by name), :mod:`kernels` (the compiled step), :mod:`env`.
"""

from astrogym.envs.scheduling.astro import configure_offline_astropy

configure_offline_astropy()
