"""Policies for ``astrogym/InterferometerLock-v0``: the classical loop-shaping controller (:mod:`loop_shaping`)."""

from astrogym.agents.interferometer.loop_shaping import LoopShapingController, LoopShapingDesign

__all__ = ["LoopShapingController", "LoopShapingDesign"]
