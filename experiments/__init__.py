"""Entry points: the ``astrogym`` command, benchmarks and evaluations."""
