"""The result of :meth:`CEMExplainer.explain` and :meth:`CounterfactualExplainer.explain`."""

import json
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from numbers import Real

import numpy as np

from ._modes import MODES
from ._warnings import warn


def plain_number(value):
    """A numpy number as a Python one; a float32 (or float16) as the shortest decimal that
    reads back as it (46.51, not the float64 46.5099983215332 it holds)."""
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    return value.item() if isinstance(value, np.generic) else value


def _to_builtin(value):
    """numpy values to JSON-ready Python values; NaN (and pandas' NA) becomes None."""
    if hasattr(value, "to_numpy") and hasattr(value, "columns"):  # a DataFrame
        rows = value.to_numpy(dtype=object)
        for j, dtype in enumerate(value.dtypes):
            if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize < 8:
                rows[:, j] = [plain_number(v) for v in value.iloc[:, j].to_numpy()]
        return [_to_builtin(list(row)) for row in rows]
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "to_numpy") and getattr(value, "ndim", 0) == 1:  # a Series, an Index
        value = value.to_numpy(dtype=object)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            plain = [plain_number(v) for v in value.ravel()] if value.dtype.itemsize < 8 \
                else value.astype(object).ravel()
            return np.where(np.isnan(value).ravel(), None,
                            np.asarray(plain, dtype=object)).reshape(value.shape).tolist()
        if value.dtype.kind == "O":
            return [_to_builtin(v) for v in value]
        return value.tolist()
    if isinstance(value, np.generic):
        value = plain_number(value)
    if isinstance(value, Decimal):  # a pyarrow decimal column's cell: a JSON number
        value = float(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):  # a time of a datetime or timedelta column, ISO 8601
        return value.isoformat()
    return value


def _index_to_builtin(index):
    """An index's labels as JSON values; a MultiIndex's as lists (``tuple`` reads them back)."""
    if index is None:
        return None
    return [_label_to_builtin(v) for v in _to_builtin(list(index))]


def _label_to_builtin(label):
    if isinstance(label, list):
        return [_label_to_builtin(v) for v in label]
    return label if label is None or isinstance(label, (int, float, str)) else str(label)


def ranked_index(rows, k):
    """The index of ``k`` answers per row: each level of ``rows`` (a MultiIndex's too), each
    label repeated ``k`` times, then the ``rank`` (pandas before 3 cannot take a MultiIndex
    in ``MultiIndex.from_product``)."""
    import pandas as pd

    levels = [rows.get_level_values(level).repeat(k) for level in range(rows.nlevels)]
    return pd.MultiIndex.from_arrays(levels + [np.tile(np.arange(k), len(rows))],
                                     names=list(rows.names) + ["rank"])


class JSONMixin:
    """``to_json`` from the class's ``to_dict``."""

    def to_json(self, **kwargs):
        """The result as a JSON string (see :meth:`to_dict`).

        Parameters
        ----------
        **kwargs
            Passed to ``json.dumps`` (``indent``, ``ensure_ascii``).

        Returns
        -------
        json : str
        """
        return json.dumps(self.to_dict(), **kwargs)


def check_tolerance(atol, name="atol"):
    """``atol`` as a float, or an error naming it: a tolerance is a finite number, 0 or
    more (NaN would count no change, a negative one every feature)."""
    if isinstance(atol, bool) or not isinstance(atol, (Real, np.integer, np.floating)) or \
            not np.isfinite(atol) or atol < 0:
        raise ValueError(f"`{name}` must be a finite number, 0 or more; got {atol!r}.")
    return float(atol)


@dataclass
class Explanation(JSONMixin):
    """Pertinent negatives, positives or counterfactuals of a batch of instances, with their
    diagnostics (``CEMExplanation`` is its former name).

    Rows follow the explained ``X``. Where no explanation was found (``found`` is False) the
    explanation, its probabilities, distance and ``c`` are NaN and its class is None (all
    ``None`` in :meth:`to_dict`). ``len(exp)`` counts the rows, and ``exp[rows]`` is the
    Explanation of some of them (``exp[3]``, ``exp[:10]``, ``exp[exp.found]``).

    Attributes
    ----------
    mode : {"PN", "PP", "CF"}
        Pertinent negatives, pertinent positives (:class:`CEMExplainer`) or counterfactuals
        (:class:`CounterfactualExplainer`).
    X : ndarray or DataFrame of shape (n_samples, n_features)
        The explained instances: a DataFrame of the fitted columns where the explainer was
        fitted on a DataFrame (an array given then is taken as those columns, with a
        warning), else as given (see ``encoded``).
    X_pred : ndarray of shape (n_samples,)
        The class each instance was explained against (the model's prediction unless given).
    X_proba : ndarray of shape (n_samples, n_classes)
        The model's probabilities for each instance.
    explanation : ndarray or DataFrame of shape (n_samples, n_features)
        The pertinent negatives, positives or counterfactuals, in the form of ``X`` above
        (``transform`` follows ``set_output`` instead: an array by default). An array of
        numbers is float64 whatever their dtype (rows not found are NaN); an integer
        column's values are whole numbers. A DataFrame keeps each column's dtype, an integer
        one made nullable (``Int64``) where rows are not found.
    explanation_pred : ndarray of shape (n_samples,), dtype object
        The model's class for each explanation; None where none was found (hence dtype
        object, whatever the classes' dtype: ``explanation_pred[found].astype(...)`` gives
        the found ones in it).
    explanation_proba : ndarray of shape (n_samples, n_classes)
    found : ndarray of bool, shape (n_samples,)
    distance : ndarray of shape (n_samples,)
        The explainer's distance of the perturbation ``d`` (see :attr:`perturbation`), as its
        ``distance`` parameter defines it and never weighted by ``c`` or ``C``:
        :class:`CEMExplainer`'s elastic net ``||d||_2^2 + beta * ||d||_1`` (each term in MAD
        units with ``distance="mad"``), :class:`CounterfactualExplainer`'s ``||d||_1``,
        ``||d||_2^2`` or MAD-scaled ``||d||_1``; a changed (or a PP's kept) category counts
        1, and a PP's immutable features, kept by construction, none (those its
        ``directions`` hold, see :attr:`held`, count: the same amount for every answer of
        the instance).
    c : ndarray of shape (n_samples,)
        The attack-term weight at which the gradient search found the returned explanation;
        NaN where nothing was found and where the answer is the gradient-free or exact
        search's (they have no such weight: ``search="auto"`` completes the gradient search's
        unanswered rows with them).
    background : ndarray of shape (n_features,) or (n_samples, n_features)
        The no-information value inside the feature range: what a PP shows for a removed
        feature. A categorical column's is its category's code (see ``encoded``). For PPs
        where an instance's value lies outside ``feature_range_``, one row per instance: the
        range widened to that value there, as the search widens it (a PP never moves a
        feature past its instance's value, away from the no-information value).
    classes : ndarray of shape (n_classes,) or None
        The model's classes, in the order of the probability columns.
    feature_names : list of str or None
    input_shape : tuple or None
        The shape of one instance as the model sees it (images), for :meth:`as_images`.
    index : pandas.Index or None
        The index of the explained DataFrame, kept by :meth:`to_frame`.
    encoded : dict or None
        For tables (a DataFrame or categorical columns given to the explainer): ``X`` and
        ``explanation`` as numbers, category codes for categorical columns, the ``categorical``
        column mask, and ``background`` in the original form (a one-row DataFrame or object
        array, categories as they are); ``X`` and ``explanation`` above are then in the original
        form: a DataFrame with the explained index and columns and the dtypes of the data
        given to ``fit`` (a category column's as ``fit`` saw it; missing values where
        nothing was found: an integer or bool column then takes pandas' nullable dtype,
        ``Int64`` or ``boolean``, which holds them), or an object array.
    meta : dict
        Diagnostics: ``n_model_rows`` (rows sent to the model by the search, not counting
        the instances' own prediction), ``n_iterations`` (per instance)
        and ``search`` (the search used: "fista", "neighbors" or "exact"; "exact" adds
        ``seconds``, each instance's time in the exact search).
    immutable : ndarray of bool, shape (n_features,), or None
        The features held fixed by the explainer's ``immutable_features`` (None: none). They
        keep the instance's values by construction: a PP keeps them whatever the class rests
        on, so :meth:`changes` leaves them out and :meth:`fixed` lists them.
    pair_held : ndarray of bool, shape (n_samples, n_features), or None
        A PP's categories that only the rare-pair rule keeps: set back to the background
        alone, each would pair with another of the PP's categories that the rows given to
        ``fit`` (almost) never hold together (a Female's relationship "Wife" with the
        background's "Husband" where sex is immutable), and the model's class stays without
        it. The class does not rest on them: they are :attr:`held`, apart from
        :meth:`changes` (None: none).
    directions : ndarray of shape (n_features,) or None
        The explainer's ``directions``: +1 where a feature may only increase, -1 where it
        may only decrease, 0 elsewhere (None: no directions). A PP's feature that may not
        move towards the background is kept by construction (see :attr:`held`).
    decimals : ndarray of int, shape (n_features,), or None
        The decimals each column's values hold (the explainer's ``decimals_``: -1 where
        none were read), by which plots write the columns' values.
    feature_range : tuple of two ndarrays of shape (n_features,), or None
        The explainer's ``feature_range_`` (category codes for categorical columns), by
        which plots draw each change as a share of its feature's range.
    counterfactuals : DataFrame, ndarray of shape (n_samples, k, n_features), or None
        :class:`CounterfactualExplainer` only: its ``n_counterfactuals`` distinct valid
        answers per instance, closest first (rank 0 is ``explanation``). A DataFrame indexed
        by (row of ``X``, rank) for DataFrame input, else an array; rows (or ranks) without
        an answer are missing values (NaN).
    counterfactual_distance : ndarray of shape (n_samples, k) or None
        The distance of each of ``counterfactuals`` (NaN where none).
    counterfactual_pred : ndarray of shape (n_samples, k), dtype object, or None
        The model's class for each of ``counterfactuals`` (None where none): with
        ``target_class="other"`` and more than two classes, an instance's answers may reach
        different classes.
    target_class : ndarray of shape (n_samples,), dtype object, or None
        :class:`CounterfactualExplainer` with a ``target_class`` other than "other": the
        class each counterfactual had to reach (:func:`skcem.metrics.explanation_metrics`
        holds its answers, and their set-backs, to it). None: any class but ``X_pred``.
    gap : ndarray of shape (n_samples,) or None
        With ``search="exact"``, and with ``search="auto"`` on a tree model where the exact
        search answered rows the gradient-free search left (NaN for the others); else None.
        Each answer's proven relative gap to the
        optimal distance, ``(distance - lower bound) / distance``; 0 for a proven optimum,
        above 0 where the program stopped at ``max_time`` with the best answer found so far
        (near 1: no useful bound was proven; a larger ``max_time``, with ``search="exact"``,
        may prove one),
        NaN where nothing was found, and for a row with missing values, whose answer is the
        gradient-free search's (a tree's way for a missing value is not modelled; a warning
        says how many).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import CEMExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> cem = CEMExplainer(clf, mode="PP", max_iterations=200, c_steps=4).fit(X)
    >>> exp = cem.explain(X[[120]])
    >>> exp.mode, bool(exp.found[0]), exp.explanation.shape
    ('PP', True, (1, 4))
    >>> int(clf.predict(exp.PP)[0]) == int(exp.X_pred[0])
    True
    >>> sorted(exp.changes()[0])  # what the PP keeps: petal length and width
    ['x2', 'x3']
    """

    mode: str
    X: np.ndarray
    X_pred: np.ndarray
    X_proba: np.ndarray
    explanation: np.ndarray
    explanation_pred: np.ndarray
    explanation_proba: np.ndarray
    found: np.ndarray
    distance: np.ndarray
    c: np.ndarray
    background: np.ndarray
    classes: np.ndarray | None = None
    feature_names: list | None = None
    input_shape: tuple | None = None
    index: object = None
    encoded: dict | None = None
    meta: dict = field(default_factory=dict)
    immutable: np.ndarray | None = None
    counterfactuals: object = None
    counterfactual_distance: np.ndarray | None = None
    gap: np.ndarray | None = None
    counterfactual_pred: np.ndarray | None = None
    target_class: np.ndarray | None = None
    directions: np.ndarray | None = None
    decimals: np.ndarray | None = None
    feature_range: tuple | None = None
    pair_held: np.ndarray | None = None

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, rows):
        """The explanations of some of the instances, as an Explanation of those rows:
        ``exp[3]``, ``exp[:10]``, ``exp[[4, 1]]`` or ``exp[exp.found]`` (positions, a slice
        or a boolean mask, as numpy takes them; a DataFrame's own labels stay in ``index``).
        ``meta``'s per-instance lists are sliced; its totals (``n_model_rows``) stay those
        of the whole call.
        """
        n = len(self)
        if isinstance(rows, (bool, np.bool_)):
            raise TypeError("An Explanation takes positions, a slice or a boolean mask of its "
                            "rows; got a single bool.")
        positions = np.atleast_1d(np.arange(n)[rows])

        def take(value):
            if value is None:
                return None
            return value.iloc[positions] if hasattr(value, "iloc") else \
                np.asarray(value)[positions]

        per_row_background = np.ndim(self.background) == 2
        encoded = None
        if self.encoded is not None:
            encoded = dict(self.encoded)
            for name in ("X", "explanation", "counterfactuals"):
                if name in encoded:
                    encoded[name] = take(encoded[name])
            if per_row_background:
                encoded["background"] = take(encoded["background"])
        meta = {name: [value[i] for i in positions]
                if isinstance(value, list) and len(value) == n else value
                for name, value in self.meta.items()}
        counterfactuals = self.counterfactuals
        if hasattr(counterfactuals, "iloc"):  # k rows per instance, by (row, rank)
            k = self._n_ranks()
            counterfactuals = counterfactuals.iloc[
                (positions[:, None] * k + np.arange(k)).ravel()]
        elif counterfactuals is not None:
            counterfactuals = counterfactuals[positions]
        return replace(
            self, X=take(self.X), X_pred=take(self.X_pred), X_proba=take(self.X_proba),
            explanation=take(self.explanation), explanation_pred=take(self.explanation_pred),
            explanation_proba=take(self.explanation_proba), found=take(self.found),
            distance=take(self.distance), c=take(self.c),
            background=take(self.background) if per_row_background else self.background,
            index=None if self.index is None else self.index[positions], encoded=encoded,
            meta=meta, counterfactuals=counterfactuals,
            counterfactual_distance=take(self.counterfactual_distance),
            counterfactual_pred=take(self.counterfactual_pred), gap=take(self.gap),
            target_class=take(self.target_class), pair_held=take(self.pair_held))

    @property
    def PN(self):
        """The pertinent negatives (``mode="PN"`` only)."""
        return self._for_mode("PN")

    @property
    def PP(self):
        """The pertinent positives (``mode="PP"`` only)."""
        return self._for_mode("PP")

    def _for_mode(self, mode):
        if self.mode != mode:
            raise AttributeError(f"This explanation holds {self.mode}s, not {mode}s.")
        return self.explanation

    def _numbers(self):
        """``(X, explanation, categorical)`` as float arrays, category codes for categories."""
        if self.encoded is not None:
            return self.encoded["X"], self.encoded["explanation"], self.encoded["categorical"]
        X = np.asarray(self.X, dtype=float)
        return X, np.asarray(self.explanation, dtype=float), np.zeros(X.shape[1], bool)

    @staticmethod
    def _difference(after, before, categorical):
        return np.where(categorical, np.where(np.isnan(after), np.nan,
                                              (after != before).astype(float)),
                        after - before)

    @property
    def held(self):
        """Per instance, the features the explainer's constraints hold at the instance's
        values, whatever the class rests on: the immutable features, and for a PP those that
        ``directions`` keep from moving towards the background (one that may only increase,
        above its background), those whose value lies outside ``feature_range`` beyond
        the no-information value, which the range then holds at the instance's value (its
        background, see ``Explanation.background``), and those that only the rare-pair rule
        keeps (:attr:`pair_held`). ndarray of bool, shape (n_samples, n_features).

        A PP keeps them by construction: :meth:`changes` leaves them out (:meth:`fixed`
        lists them), and so do the metrics.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skcem import CEMExplainer
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
        >>> cem = CEMExplainer(clf, mode="PP", directions={2: "increase"}, max_iterations=200,
        ...                    c_steps=4).fit(X)
        >>> # petal lengths 1.4 and 5.7, background 4.4; a TargetWarning says that one PP
        >>> # keeps nothing besides what the constraints hold: the held petal length
        >>> exp = cem.explain(X[[0, 120]])
        >>> exp.held[:, 2].tolist()  # it may only increase: held where it lies above
        [False, True]
        """
        X, _, _ = self._numbers()
        held = np.zeros(X.shape, bool)
        if self.immutable is not None:
            held |= self.immutable
        if self.mode == "PP" and self.directions is not None:
            background = np.asarray(self.background, float)
            held |= ((self.directions > 0) & (background < X)) | \
                ((self.directions < 0) & (background > X))
        if self.pair_held is not None:
            held |= self.pair_held
        return held | self._held_by_range(X)

    def _held_by_range(self, X):
        """A PP's features whose instance value lies outside ``feature_range`` on the far side
        of the no-information value: the search's background there is the value itself."""
        background = np.asarray(self.background, float)
        if self.mode != "PP" or self.feature_range is None or background.ndim != 2:
            return np.zeros(X.shape, bool)
        lower, upper = (np.asarray(bound, float) for bound in self.feature_range)
        return ((X < lower) | (X > upper)) & (background == X)

    def _holds_any(self):
        """Whether any feature can be held (:attr:`held`): the columns of ``fixed``."""
        return self.immutable is not None or self.pair_held is not None or (
            self.mode == "PP" and (
                (self.directions is not None and bool(np.any(self.directions)))
                or bool(self._held_by_range(self._numbers()[0]).any())))

    @property
    def delta(self):
        """``explanation - X`` as numbers: how each feature changed (NaN rows where nothing was
        found); a categorical column holds 1.0 where its category changed."""
        X, explanation, categorical = self._numbers()
        return self._difference(explanation, X, categorical)

    @property
    def perturbation(self):
        """What CEM added (PN: ``PN - X``) or kept (PP: ``PP - background``), or how a
        counterfactual changed ``X``, as numbers (1.0 for a changed or kept category).

        The quantity whose distance the search minimises; sparsity and proximity
        (:mod:`skcem.metrics`) are measured on it.
        """
        X, explanation, categorical = self._numbers()
        reference = MODES[self.mode].perturbation_reference(X, self.background)
        return self._difference(explanation, reference, categorical)

    def as_images(self, input_shape=None):
        """``(X, explanation)`` reshaped to ``(n_samples, *input_shape)``.

        Parameters
        ----------
        input_shape : tuple, optional
            The shape of one instance; default: the explanation's ``input_shape``, else flat.

        Returns
        -------
        X : ndarray of shape (n_samples, \\*input_shape)
        explanation : ndarray of shape (n_samples, \\*input_shape)
        """
        shape = tuple(input_shape or self.input_shape or (self.X.shape[1],))
        X, explanation, _ = self._numbers()
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"`input_shape` {shape} holds {int(np.prod(shape))} values, but "
                             f"the instances have {X.shape[1]} features.")
        return (X.reshape((-1,) + shape), explanation.reshape((-1,) + shape))

    def changes(self, atol=1e-12):
        """Per instance, the features the explanation changes: ``{name: new value}``; a
        categorical change is shown as ``"from → to"``. For pertinent positives, the features
        the PP keeps (its non-zero :attr:`perturbation`): ``{name: kept value}``; every other
        feature shows its no-information value. Features the constraints hold
        (:attr:`held`: immutable ones, and a PP's that ``directions`` keep from the
        background) are not listed: a PP keeps them by construction, not because the class
        rests on them (see :meth:`fixed`). A missing cell, kept missing, is not listed
        either.

        Parameters
        ----------
        atol : float, default=1e-12
            A smaller change (in absolute value) is not listed.

        Returns
        -------
        changes : list of dict, or list of list of dict
            One dict per instance, empty where nothing was found. With several
            counterfactuals per instance (``n_counterfactuals`` > 1), one list per instance
            of the dicts of its answers, closest first.
        """
        atol = check_tolerance(atol)
        if self._n_ranks() > 1:
            k = self._n_ranks()
            ranked = self._ranked()
            flat = ranked.changes(atol)
            return [[row for row, found in zip(flat[i * k:(i + 1) * k],
                                                ranked.found[i * k:(i + 1) * k])
                     if found] for i in range(len(self))]
        names = self._names()
        _, _, categorical = self._numbers()
        keeps = self.mode == "PP"
        delta = self.perturbation if keeps else self.delta
        listed = (np.abs(delta) > atol) & ~self.held
        rows = []
        for i in range(len(self)):
            if not self.found[i]:
                rows.append({})
                continue
            row = {}
            for j in np.flatnonzero(listed[i]):
                value = self._value(self.explanation, i, j)
                if not categorical[j]:  # a plain int for an integer column, a float, a time
                    value = plain_number(value) if isinstance(value, np.generic) else \
                        float(value) if isinstance(value, Real) else value
                elif not keeps:
                    value = f"{self._value(self.X, i, j)} → {value}"
                elif isinstance(value, np.generic):  # a kept category: a plain Python value
                    value = value.item()
                row[names[j]] = value
            rows.append(row)
        return rows

    def fixed(self):
        """Per instance, the features the constraints hold (:attr:`held`) and the values
        the explanation holds them at (the instance's): ``{name: value}``.

        They are apart from :meth:`changes`: fixed by the explainer's ``immutable_features``
        (and, for a PP, by ``directions`` that keep a feature from moving towards the
        background, or by the rare-pair rule where the class stays without the category:
        :attr:`pair_held`), not chosen by the search. A PP keeps them whatever the class
        rests on, a PN or a counterfactual never changes the immutable ones.

        Returns
        -------
        fixed : list of dict
            One dict per instance, empty where nothing was found or no feature is held.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skcem import CEMExplainer
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
        >>> cem = CEMExplainer(clf, mode="PP", immutable_features=[0], max_iterations=200,
        ...                    c_steps=4).fit(X)
        >>> exp = cem.explain(X[[120]])
        >>> exp.fixed()  # sepal length, kept by construction
        [{'x0': 6.9}]
        >>> sorted(exp.changes()[0])  # what the class rests on
        ['x2', 'x3']
        """
        names = self._names()
        held = self.held
        return [{names[j]: self._plain_value(self.explanation, i, j)
                 for j in np.flatnonzero(held[i])}
                if self.found[i] else {} for i in range(len(self))]

    def _n_ranks(self):
        """Answers per instance: ``n_counterfactuals``, 1 without ``counterfactuals``."""
        distance = self.counterfactual_distance
        return 1 if distance is None else distance.shape[1]

    def _ranked(self):
        """One explanation per (instance, rank): each row of ``X`` repeated ``k`` times and
        the ``counterfactuals`` as its explanations, indexed by (row of ``X``, rank)."""
        k = self._n_ranks()
        n = len(self)
        repeated = np.repeat(np.arange(n), k)
        found = np.isfinite(self.counterfactual_distance).ravel()
        answers = self.counterfactuals
        try:
            import pandas as pd

            index = ranked_index(pd.RangeIndex(n) if self.index is None else self.index, k)
        except ImportError:
            index = None
        if hasattr(self.X, "iloc"):
            X = self.X.iloc[repeated].set_axis(index)
        else:
            X = self.X[repeated]
            answers = answers.reshape(n * k, *answers.shape[2:])  # (no -1: n may be 0)
        encoded = None
        if self.encoded is not None:
            coded = self.encoded["counterfactuals"]
            encoded = {"X": self.encoded["X"][repeated], "categorical":
                       self.encoded["categorical"],
                       "explanation": coded.reshape(n * k, *coded.shape[2:])}
        pred = self.counterfactual_pred.ravel() if self.counterfactual_pred is not None \
            else np.where(found, self.explanation_pred[repeated], None)
        first = np.arange(n * k) % k == 0
        proba = np.full((n * k, self.explanation_proba.shape[1]), np.nan)
        proba[::k] = self.explanation_proba  # known for rank 0 only
        gap = None if self.gap is None else np.where(first, self.gap[repeated], np.nan)
        target_class = None if self.target_class is None else self.target_class[repeated]
        return replace(self, X=X, X_pred=self.X_pred[repeated], X_proba=self.X_proba[repeated],
                       target_class=target_class,
                       explanation=answers, explanation_pred=pred, explanation_proba=proba,
                       found=found, distance=self.counterfactual_distance.ravel(),
                       c=np.where(first, self.c[repeated], np.nan), gap=gap,
                       index=index, encoded=encoded, counterfactuals=None,
                       counterfactual_distance=None, counterfactual_pred=None)

    def _names(self):
        if self.feature_names:
            return self.feature_names
        if hasattr(self.X, "columns"):  # a DataFrame's own labels (integers, say)
            return [label.item() if isinstance(label, np.generic) else label
                    for label in self.X.columns]
        return [f"x{j}" for j in range(self.X.shape[1])]

    @classmethod
    def _plain_value(cls, table, i, j):
        """A cell as a plain Python value: numbers as int or float, categories as they are."""
        return plain_number(cls._value(table, i, j))

    @staticmethod
    def _value(table, i, j):
        return table.iloc[i, j] if hasattr(table, "iloc") else table[i, j]

    def to_frame(self):
        """One row per instance: the explanation's features, then ``found``, the classes,
        ``distance``, ``c`` (and ``gap`` where the exact search ran: see ``Explanation.gap``); with
        immutable features (or
        a PP's ``directions``), a last column ``fixed`` names those held (comma-separated,
        empty where nothing was found): their values are held fixed, not changed or kept by
        the search (see :meth:`fixed`).
        Needs pandas. The index is the explained DataFrame's, so that
        ``X.join(explanation.to_frame(), rsuffix="_explained")`` lines rows up.

        With several counterfactuals per instance (``n_counterfactuals`` > 1), one row per
        (instance, rank), indexed by (row of ``X``, rank), closest first; ``c`` and ``gap``
        are the search's for rank 0 only.

        Returns
        -------
        frame : pandas.DataFrame of shape (n_samples, n_features + 5), one column more
            with held features and one with ``gap`` (see ``Explanation.gap``); ``n_samples * k``
            rows with ``k`` counterfactuals
        """
        if self._n_ranks() > 1:
            return self._ranked().to_frame()
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Explanation.to_frame needs pandas: `pip install pandas`.") \
                from exc
        names = self._names()
        if hasattr(self.explanation, "columns"):
            frame = self.explanation.copy()
        else:
            frame = pd.DataFrame(self.explanation, columns=names, index=self.index)
        meta = {"found": self.found, "class": self.X_pred,
                f"{self.mode}_class": self.explanation_pred, "distance": self.distance,
                "c": self.c}
        if self.gap is not None:
            meta["gap"] = self.gap
        if self._holds_any():
            meta["fixed"] = [", ".join(map(str, row)) for row in self.fixed()]
        features = list(frame.columns)  # exact labels: a MultiIndex's "c" is no ("c", 3)
        renamed = {}
        for name in meta:
            if name in features:
                # a name no feature has (a feature may be called explanation_found too)
                renamed[name] = f"explanation_{name}"
                while renamed[name] in features:
                    renamed[name] += "_"
        if renamed:
            warn(f"Feature columns {list(renamed)} share their names with to_frame's own "
                 f"columns, which are named {list(renamed.values())} instead (the features "
                 "keep theirs).")
        levels = frame.columns.nlevels
        for name, values in meta.items():
            # a full-length key under a MultiIndex (a partial one is deprecated in pandas);
            # frame["found"] is still the column
            key = renamed.get(name, name)
            frame[key if levels == 1 else (key,) + ("",) * (levels - 1)] = values
        return frame

    def to_dict(self):
        """A dict of plain Python values (lists, floats, None for NaN): ready for ``json``.

        Returns
        -------
        explanation : dict
            One entry per attribute.
        """
        return {f.name: _to_builtin(getattr(self, f.name)) for f in fields(self)
                if f.name != "index"} | {"index": _index_to_builtin(self.index)}



# The name of skcem 0.1, kept for code written against it.
CEMExplanation = Explanation
