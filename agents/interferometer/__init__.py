"""Policies for ``astrogym/InterferometerLock-v0``: the classical loop-shaping controller (:mod:`loop_shaping`),
the frequency-weighted H2 (LQG) controller (:mod:`h2`), the same synthesised on a plant identified from
closed-loop data (:mod:`identified`) and the temporal encoder of the learned policy
(:mod:`temporal`, torch; imported from its module)."""

from astrogym.agents.interferometer.h2 import H2Controller, H2Design
from astrogym.agents.interferometer.loop_shaping import LoopShapingController, LoopShapingDesign

__all__ = ["H2Controller", "H2Design", "LoopShapingController", "LoopShapingDesign"]
