"""Behaviour shared by skcem's explainers."""

import copy
import sys

import numpy as np
from sklearn.exceptions import NotFittedError

from sklearn.utils.metadata_routing import (MetadataRouter, MethodMapping, _routing_enabled,
                                             process_routing)

from ._validation import is_prefitted
from ._warnings import SkcemWarning, warn


_ABSENT = object()


def _unchanged(current, value):
    """Whether setting a parameter to ``value`` leaves it as it is (``current``)."""
    if current is value:
        return True
    if current is _ABSENT:
        return False
    try:
        return type(current) is type(value) and bool(current == value)
    except (TypeError, ValueError):  # arrays, objects without a truth value
        return False


class InconsistentVersionWarning(SkcemWarning):
    """A fitted explainer pickled by another version of skcem (as scikit-learn's
    ``InconsistentVersionWarning`` for its own estimators)."""


def _skcem_version():
    return sys.modules[__package__].__version__


def _refuse_unrouted(explainer, fit_params):
    if fit_params:
        raise ValueError(f"{sorted(fit_params)} given to {type(explainer).__name__}.fit, but "
                         "no model it fits can take them (`estimator` is None or not a "
                         "scikit-learn estimator).")
    return {}


def _same_value(a, b):
    """Whether two parameter values are the same (the same object, or equal values, arrays,
    mappings and sequences of them)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.all((a == b) | ((a != a) & (b != b))))
    if isinstance(a, (str, bytes, int, float, complex, bool, np.generic)):
        return a == b or (a != a and b != b)
    try:  # another object (a time, a duration) by its own equality, where it says yes or no
        equal = a == b
    except Exception:
        return False
    return equal if isinstance(equal, (bool, np.bool_)) else False


def _snapshot(value):
    """A copy of a list, tuple, dict or array ``value`` (of its own type: an OrderedDict, a
    named tuple), which the user may change in place; other objects, models included, as
    they are."""
    if isinstance(value, (dict, list, tuple, np.ndarray)):
        return copy.deepcopy(value)
    return value


def _fitted_state(estimator, prefix="", depth=0):
    """Identities of a scikit-learn model's fitted attributes (``coef_``, ``estimators_``...,
    a Pipeline's steps' and a wrapper's inner model's too, as ``[k].name``), by name: ``fit``
    replaces them, so a model fitted again in place no longer matches. None for other models
    (a network's weights are read live, as they are at each call)."""
    if estimator is None or not hasattr(estimator, "get_params") or depth > 8:
        return None
    state = {prefix + name: id(value) for name, value in vars(estimator).items()
             if name.endswith("_") and not name.startswith("_")}
    inner = [step for _, step in getattr(estimator, "steps", None) or ()]
    if type(estimator).__name__ == "FrozenEstimator":
        inner.append(estimator.estimator)
    for k, step in enumerate(inner):
        state.update(_fitted_state(step, f"{prefix}[{k}].", depth + 1) or {})
    return state


class ExplainerMixin:
    """A fitted model to explain survives ``clone``; compiled helpers are not pickled.

    The fitted classifier is what is being explained, not a hyper-parameter: clones
    (``GridSearchCV``, ``cross_validate``) explain the same model instead of an unfitted copy,
    like ``sklearn.frozen.FrozenEstimator``. It is only ever read, so sharing it is safe. An
    unfitted estimator is cloned as usual. An ``autoencoder`` is shared the same way.
    """

    # Attributes rebuilt on demand after unpickling (compiled TensorFlow functions).
    _transient_attributes = ()
    # The parameters ``fit`` reads (the others are read where they act, at each call).
    _fit_parameters = ()

    def _remember_fit_parameters(self):
        """Record the values of :attr:`_fit_parameters` that this ``fit`` reads (copies of
        lists, dicts and arrays, which the user may change in place), and the fitted state of
        a model used as it is."""
        params = self.get_params(deep=False)
        self._fitted_with = {name: _snapshot(params[name]) for name in self._fit_parameters
                             if name in params}
        estimator = params.get("estimator")
        self._fitted_state = (id(estimator), _fitted_state(estimator)) \
            if is_prefitted(estimator) else None

    def _check_fit_parameters(self):
        """Raise where ``set_params`` changed a parameter ``fit`` reads since the last ``fit``:
        the explainer would otherwise go on with what it learned from the old value."""
        fitted_with = getattr(self, "_fitted_with", None)
        if fitted_with is None:
            return
        params = self.get_params(deep=False)
        changed = [name for name, value in fitted_with.items()
                   if not _same_value(params[name], value)]
        state = getattr(self, "_fitted_state", None)
        # the same model object (a copy or an unpickled explainer holds its own copy)
        if state is not None and not changed and state[0] == id(params["estimator"]):
            before, now = state[1] or {}, _fitted_state(params["estimator"]) or {}
            if now != before:
                new = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
                raise NotFittedError(
                    f"`estimator` ({type(params['estimator']).__name__}) was fitted again since "
                    f"{type(self).__name__}'s fit (its fitted attributes {new[:5]} are new or "
                    "changed), which learned from the model as it was (its gradients, its "
                    "classes, the rows it puts in each class). Call fit again. (A model that "
                    "sets such attributes when it predicts breaks scikit-learn's rule that "
                    "predict changes nothing.)")
        if changed:
            raise NotFittedError(
                f"{', '.join(changed)} changed since fit (set_params after fit): "
                f"{type(self).__name__} learns from {'them' if len(changed) > 1 else 'it'} in "
                "fit. Call fit again.")

    def __sklearn_clone__(self):
        twin = super().__sklearn_clone__()
        if is_prefitted(self.estimator):
            twin.estimator = self.estimator
        # An auto-encoder is a trained model too, only ever called: shared, not deep-copied.
        if getattr(self, "autoencoder", None) is not None:
            twin.autoencoder = self.autoencoder
        return twin

    def get_metadata_routing(self):
        """How ``fit``'s parameters reach the model it fits (see scikit-learn's metadata
        routing): those of ``estimator.fit`` that it requests.

        Returns
        -------
        routing : MetadataRouter
            The routing of ``fit``'s parameters to ``estimator.fit``.
        """
        router = MetadataRouter(owner=self)
        if hasattr(self.estimator, "get_metadata_routing"):
            router.add(estimator=self.estimator,
                       method_mapping=MethodMapping().add(caller="fit", callee="fit"))
        return router

    def _estimator_fit_params(self, fit_params):
        """The parameters of ``fit`` for ``estimator.fit``: all of them, or under metadata
        routing those it requests."""
        if _routing_enabled():
            return dict(process_routing(self, "fit", **fit_params).estimator.fit) \
                if hasattr(self.estimator, "get_metadata_routing") else \
                _refuse_unrouted(self, fit_params)
        return fit_params

    def set_params(self, **params):
        """Set the parameters of this explainer (see ``BaseEstimator.set_params``).

        Nested parameters of a fitted ``estimator`` (``estimator__C``) are refused: the
        fitted model is explained as it is, never refitted, so they would change the user's
        model without changing what is explained.

        Parameters
        ----------
        **params : dict
            Explainer parameters, and nested parameters of an unfitted ``estimator``.

        Returns
        -------
        self : object
            The explainer.
        """
        nested = sorted(key for key in params if key.startswith("estimator__"))
        estimator = params.get("estimator", getattr(self, "estimator", None))
        if nested and is_prefitted(estimator):
            # the values it holds already change nothing: get_params' round trip
            current = estimator.get_params(deep=True) if hasattr(estimator, "get_params") \
                else {}
            nested = [key for key in nested
                      if not _unchanged(current.get(key[len("estimator__"):], _ABSENT),
                                        params[key])]
            if not nested:
                return super().set_params(**{key: value for key, value in params.items()
                                             if not key.startswith("estimator__")})
            raise ValueError(
                f"Cannot set {nested} on `estimator`: it is a fitted model, which "
                f"{type(self).__name__} explains as it is and never refits. Pass an unfitted "
                "estimator to have it fitted on fit's X and y, or set `estimator` to a model "
                "refitted with those parameters.")
        return super().set_params(**params)

    def __getstate__(self):
        state = dict(super().__getstate__())  # may be the instance's own __dict__
        for name in self._transient_attributes:
            state.pop(name, None)
        # scikit-learn records its version only for its own classes' pickles
        state["_skcem_version"] = _skcem_version()
        return state

    def __setstate__(self, state):
        saved = state.pop("_skcem_version", None)
        if saved is not None and saved != _skcem_version():
            warn(f"This {type(self).__name__} was pickled by skcem {saved} and is loaded by "
                 f"skcem {_skcem_version()}: its fitted state may not be what this version "
                 "reads. Fit it again, or load it with skcem "
                 f"{saved}.", InconsistentVersionWarning)
        super().__setstate__(state)
