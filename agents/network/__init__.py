"""Policies for ``astrogym/TelescopeNetwork-v0``: network greedy, coordinated greedy (and the search references in
:mod:`astrogym.agents.scheduling`, which run on both scheduling envs)."""
