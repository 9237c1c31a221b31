"""Machinery every astrogym domain shares: the env base class (:mod:`base`), config validation, RNG kernels,
linear systems, rendering."""
