"""Learned dynamics models and density estimators (later issues).

The package exists now so that the installed namespace ``astrogym.surrogates`` is stable
from the first release; environments never import it.
"""
