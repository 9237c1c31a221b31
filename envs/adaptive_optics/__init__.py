"""Adaptive optics (issue 3, in progress): the atmosphere is here; the WFS, DM, loop and the
``astrogym/AdaptiveOptics-v0`` env are not yet, so nothing is registered."""
