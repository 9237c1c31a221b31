"""Machinery every astrogym domain shares: config validation, RNG kernels, linear systems, rendering."""
