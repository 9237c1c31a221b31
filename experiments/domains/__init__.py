"""The built-in experiment domains; each module registers one :class:`~astrogym.experiments.registry.Domain`."""
