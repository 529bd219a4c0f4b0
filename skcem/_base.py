"""Behaviour shared by skcem's explainers."""

from ._validation import is_prefitted


class ExplainerMixin:
    """A fitted model to explain survives ``clone``; compiled helpers are not pickled.

    The fitted classifier is what is being explained, not a hyper-parameter: clones
    (``GridSearchCV``, ``cross_validate``) explain the same model instead of an unfitted copy,
    like ``sklearn.frozen.FrozenEstimator``. It is only ever read, so sharing it is safe. An
    unfitted estimator is cloned as usual. An ``autoencoder`` is shared the same way.
    """

    # Attributes rebuilt on demand after unpickling (compiled TensorFlow functions).
    _transient_attributes = ()

    def __sklearn_clone__(self):
        twin = super().__sklearn_clone__()
        if is_prefitted(self.estimator):
            twin.estimator = self.estimator
        # An auto-encoder is a trained model too, only ever called: shared, not deep-copied.
        if getattr(self, "autoencoder", None) is not None:
            twin.autoencoder = self.autoencoder
        return twin

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
        return state
