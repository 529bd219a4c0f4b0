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

    def __getstate__(self):
        state = dict(super().__getstate__())  # may be the instance's own __dict__
        for name in self._transient_attributes:
            state.pop(name, None)
        return state
