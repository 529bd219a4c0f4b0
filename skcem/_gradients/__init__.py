"""Gradient backends: what the optimizer asks of a model, per model kind.

:func:`make_backend` picks one from the estimator, once, in ``fit``; the optimizer
(:mod:`skcem._fista`) never knows which it is talking to.
"""

from ._numerical import NumericalBackend

__all__ = ["NumericalBackend"]
