"""Fitted tree models read into one form, in the coordinates of the explainer's search.

The exact search (:mod:`skcem._exact_search`) needs, for every tree of a model, the box of each leaf
and the leaf's contribution to each class's score, and how the model turns the scores into
its ``predict``. :func:`read_tree_ensemble` reads them from the supported model kinds:

* ``DecisionTreeClassifier``, ``RandomForestClassifier``, ``ExtraTreesClassifier``: the
  scores are the class probabilities, averaged over the trees; ``predict`` is their argmax
  (the first class on ties).
* ``GradientBoostingClassifier``, ``HistGradientBoostingClassifier``: the scores are raw
  values summed over the trees plus a baseline, one tree set per class (one for two
  classes, whose raw value ``F`` is the positive class's score against 0); ``predict`` is
  their argmax, for two classes ``F > 0`` (``F >= 0`` for ``GradientBoostingClassifier``).

alone or as the last step of a :class:`~sklearn.pipeline.Pipeline` whose earlier steps the
splits can be followed through (:func:`_follow_steps`): scalers are affine maps, so a split
on a scaled column is a split on the raw one at the mapped threshold; one-hot and ordinal
encoders turn a split on an encoded column into a set of categories of the raw column.

Every split is then either numeric, ``z[j] <= threshold`` going left, or categorical, the
codes of ``z[j]`` that go left, where ``z`` is the search's row: numeric columns raw,
categorical columns as the codes of :class:`~skcem._tabular.TableCodec`.
"""

import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from ._wrappers import decision_threshold, frozen_inner

_SUPPORTED = ("DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier, "
              "GradientBoostingClassifier, HistGradientBoostingClassifier, and LightGBM's "
              "LGBMClassifier and XGBoost's XGBClassifier when installed")
_WHERE = ("alone or at the end of a Pipeline, also inside a FixedThresholdClassifier or "
          "TunedThresholdClassifierCV")
_FOLLOWED = ("StandardScaler, MinMaxScaler (without clip), MaxAbsScaler, RobustScaler, "
             "OneHotEncoder and OrdinalEncoder (on categorical columns), SimpleImputer "
             "(without indicator columns), FunctionTransformer() without a function, "
             "'passthrough' "
             "and ColumnTransformers or Pipelines of them")


# Rows of the fit data the trees as read are checked on (TreeEnsemble.misread_rows).
_CHECKED_ROWS = 500
@dataclass
class TreeEnsemble:
    """The nodes of all trees of a model, numbered together, in the search's coordinates.

    Attributes
    ----------
    roots : ndarray of int
        The root node of each tree.
    left, right : ndarray of int, shape (n_nodes,)
        Children of each node; -1 for leaves.
    feature : ndarray of int, shape (n_nodes,)
        The search's column a node splits on; -1 for leaves.
    threshold : ndarray of float, shape (n_nodes,)
        Numeric splits go left where ``z[feature] <= threshold``; NaN for categorical ones.
    margin : ndarray of float, shape (n_nodes,)
        How far inside a numeric split's sides an answer is placed, in the search's units: a
        few float32 spacings of the model's own threshold (trees compare in float32), mapped
        back through the Pipeline's scaling.
    left_codes : dict
        Categorical splits: node -> boolean mask over the column's codes going left.
    leaf_scores : ndarray of shape (n_nodes, n_classes)
        Each leaf's contribution to each class's score (0 for inner nodes).
    base : ndarray of shape (n_classes,)
        The scores' constant part.
    raw_binary_slope : float or None
        For boosting with two classes: ``predict_proba``'s positive probability is
        ``expit(slope * F)``; None where the scores are probabilities (forests) or raw
        multi-class values.
    is_probability : bool
        Whether the scores are the class probabilities (forests, trees).
    ties_to_higher : bool
        Whether two classes' equal scores go to the higher class (``GradientBoosting
        Classifier``'s ``F >= 0``); else to the lower one, as ``argmax`` does.
    thresholded : bool
        Whether ``base`` follows a threshold classifier's ``predict`` (its model's
        probabilities shifted by the threshold), not the model's own scores.
    model_scale, model_offset, model_threshold : ndarray of float or None
        Per numeric split, the value the model compares, ``model_scale * z +
        model_offset`` of the search's ``z`` (its Pipeline's scaling), and the threshold it
        compares it with (NaN elsewhere).
    model_operations : list or None
        Per node, how the Pipeline's steps compute that value, operation by operation
        (``("sub", mean)``, ``("div", scale)``...), or None where not known.
    float32 : bool
        Whether the model compares values cast to float32 (scikit-learn's trees, forests and
        gradient boosting, XGBoost), else in float64 (HistGradientBoosting, LightGBM).
    """

    roots: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_scores: np.ndarray
    base: np.ndarray
    is_probability: bool
    margin: np.ndarray
    raw_binary_slope: float | None = None
    ties_to_higher: bool = False
    left_codes: dict = field(default_factory=dict)
    thresholded: bool = False
    model_scale: np.ndarray | None = None
    model_offset: np.ndarray | None = None
    model_threshold: np.ndarray | None = None
    model_operations: list | None = None
    float32: bool = True
    input_float32: bool = False

    def asked_in_float32(self):
        """These trees taken as asked with float32 rows (a copy, made once): the side tests
        round as the model does, and each numeric split's margin holds the float32 spacing
        of its threshold (a value a float64 step inside would round back across it)."""
        if self.input_float32:
            return self
        twin = getattr(self, "_float32_twin", None)
        if twin is None:
            numeric = np.isfinite(self.threshold)
            spacing = np.zeros_like(self.margin)
            spacing[numeric] = 4 * np.spacing(
                np.abs(self.threshold[numeric]).astype(np.float32))
            twin = replace(self, input_float32=True, margin=np.maximum(self.margin, spacing))
            self._float32_twin = twin
        return twin

    def reads_left(self, nodes, values):
        """Whether the model sends the search's ``values`` of numeric splits ``nodes`` to
        the child the reading calls left (``z <= threshold``), by its own comparison: in
        its units and precision. Where the splits' model units are unknown, by the
        reading's ``threshold`` in float64 and float32 alike (either way may be the
        model's)."""
        return self.side_test(nodes)(values)

    def side_test(self, nodes):
        """:meth:`reads_left` for the splits ``nodes``, as a function of their values (the
        per-node work done once: the exact search asks it many times)."""
        nodes = np.asarray(nodes)
        # rows asked in float32 (an array of them given to fit): each value, and each of a
        # scaler's operations on it, rounded to float32, as numpy computes in place
        rounded = (lambda v: v.astype(np.float32).astype(float)) if self.input_float32 else \
            (lambda v: v)
        if self.model_scale is None:
            t = self.threshold[nodes]
            return lambda values: (rounded(np.asarray(values, float)) <= t) & \
                (np.asarray(values, float).astype(np.float32) <= t)
        a, b = self.model_scale[nodes], self.model_offset[nodes]
        t, float32 = self.model_threshold[nodes], self.float32
        chains = [None] * len(nodes) if self.model_operations is None else \
            [self.model_operations[node] for node in nodes.ravel()]
        # the steps' own operations where known (to the last bit), else the affine map
        groups = [(np.array([c == chain for c in chains]).reshape(nodes.shape), chain)
                  for chain in set(chain for chain in chains if chain is not None)]

        def test(values):
            values = rounded(np.asarray(values, dtype=float))
            compared = a * values + b
            for at, chain in groups:
                value = values[at]
                for name, number in chain:
                    value = rounded(value - number if name == "sub" else value / number
                                    if name == "div" else value * number if name == "mul"
                                    else value + number)
                compared[at] = value
            if float32:
                compared = compared.astype(np.float32).astype(float)
            left = compared <= t
            return np.where(a > 0, left, ~left)  # a decreasing map swapped the children

        return test

    @property
    def n_classes(self):
        return self.base.shape[0]

    def __getstate__(self):
        # The exact search's program, kept with the trees once built, is rebuilt rather
        # than pickled: a 500-tree forest's made a pickled explainer 4 times its model.
        state = dict(self.__dict__)
        state.pop("_program", None)
        return state

    def apply(self, Z):
        """The leaf of each tree each row of ``Z`` reaches, shape (n_rows, n_trees)."""
        return self._leaves(Z)[0]

    def _leaves(self, Z, near_thresholds=False):
        """``apply``'s leaves, and with ``near_thresholds`` per row whether its way passes
        within a numeric split's ``margin`` of the threshold (where the model's own float32
        comparison, or a threshold mapped back through a scaler, may send it the other way;
        else None)."""
        Z = np.asarray(Z, dtype=float)
        # The categorical splits' masks side by side: one row each, indexed by node.
        coded = np.full(len(self.left), -1)
        width = max((len(mask) for mask in self.left_codes.values()), default=0)
        masks = np.zeros((len(self.left_codes), width), bool)
        for k, (n, mask) in enumerate(self.left_codes.items()):
            coded[n] = k
            masks[k, :len(mask)] = mask
        node = np.tile(self.roots, (len(Z), 1))
        rows = np.arange(len(Z))[:, None]
        near = np.zeros(len(Z), bool) if near_thresholds else None
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return node, near
            value = Z[rows, np.maximum(self.feature[node], 0)]
            threshold = self.threshold[node]
            goes_left = value <= threshold
            if near_thresholds:
                near |= np.any(inner & (np.abs(value - threshold) <= self.margin[node]), axis=1)
            at = inner & (coded[node] >= 0)
            if at.any():
                goes_left[at] = masks[coded[node[at]], value[at].astype(int)]
            node = np.where(inner, np.where(goes_left, self.left[node], self.right[node]), node)

    def scores(self, Z):
        """The class scores of rows ``Z`` (probabilities or raw values)."""
        return self.base + self.leaf_scores[self.apply(Z)].sum(axis=1)

    def misread_rows(self, Z, predicted):
        """How many rows of ``Z`` the trees as read put in another class than ``predicted``
        (the model's own class indices), leaving out rows whose two best scores are within
        rounding of a tie (the sums' order may send those either way), rows that pass
        within a split's ``margin`` of its threshold (where the searches place no answer:
        the model's float32 comparison, and a threshold mapped back through a scaler, may
        send them either way) and rows with missing values (which the trees send their own
        way, and the reading does not follow)."""
        Z = np.asarray(Z, dtype=float)
        complete = np.flatnonzero(np.isfinite(Z).all(axis=1))
        # a sample tells a reading that the model contradicts (on a user's XGBoost behind
        # sparse one-hot rows, one row in seven)
        complete = complete[np.linspace(0, len(complete) - 1, min(len(complete), _CHECKED_ROWS),
                                        dtype=int)] if len(complete) else complete
        Z, predicted = Z[complete], np.asarray(predicted)[complete]
        leaves, near = self._leaves(Z, near_thresholds=True)
        scores = self.base + self.leaf_scores[leaves].sum(axis=1)
        if scores.shape[1] < 2:
            return 0
        ranked = np.sort(scores, axis=1)
        apart = ranked[:, -1] - ranked[:, -2] > 1e-9 * (1 + np.abs(ranked[:, -1]))
        if self.ties_to_higher:
            read = scores.shape[1] - 1 - np.argmax(scores[:, ::-1], axis=1)
        else:
            read = np.argmax(scores, axis=1)
        return int(np.sum(apart & ~near & (read != predicted)))


# ---------------------------------------------------------------------------------------------
# Following a Pipeline's preprocessing: each column a step receives is an expression of one
# column j of the search's row z: affine, a * z[j] + b (numeric columns), or coded,
# values[z[j]] (categorical columns, whose codes index their categories).


@dataclass(frozen=True)
class _Affine:
    column: int
    scale: float = 1.0
    offset: float = 0.0
    # the steps' own arithmetic, in order: ("sub" | "div" | "mul" | "add", value), which the
    # model's float64 value follows to the last bit (a threshold midway between two
    # decimals is met exactly); None where a step's is not known
    operations: tuple | None = ()


@dataclass(frozen=True)
class _Coded:
    column: int
    values: tuple  # one value per code


@dataclass(frozen=True, eq=False)
class _Indicator:
    """A one-hot encoder's output column of category ``index``: ``scale + offset`` for the
    codes of column ``column`` whose category the encoder puts at ``index``, ``offset`` for
    the others. ``positions`` (each code's position among the encoder's categories) is shared
    by all the columns of one encoder: K categories cost O(K), not K columns of K values."""
    column: int
    positions: np.ndarray
    index: int
    scale: float = 1.0
    offset: float = 0.0

    @property
    def values(self):
        return (self.positions == self.index) * self.scale + self.offset


def _positions(values, categories):
    """Each value's position among ``categories`` (a missing value matches a missing
    category), -1 where none matches."""
    try:
        where = {c: i for i, c in reversed(list(enumerate(categories))) if _same(c, c)}
        missing = next((i for i, c in enumerate(categories) if not _same(c, c)), -1)
        return np.array([missing if not _same(v, v) else where.get(v, -1) for v in values])
    except TypeError:  # unhashable categories: compared one by one
        return np.array([next((i for i, c in enumerate(categories) if _same(v, c)), -1)
                         for v in values])


_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _Unfollowed(ValueError):
    """A step the reading cannot follow; ``where`` names the steps around it, outermost
    first, as the steps that hold it are left."""

    def __init__(self, name, why):
        super().__init__(name, why)
        self.name, self.why, self.where = name, why, []

    def __str__(self):
        at = f" (at {' > '.join(self.where)})" if self.where else ""
        return (f"search='exact' cannot follow the Pipeline step {self.name}{at}{self.why}: "
                f"it follows {_FOLLOWED}.")


def _refuse(step, why=""):
    raise _Unfollowed(type(step).__name__ if not isinstance(step, str) else repr(step), why)


@contextmanager
def _inside(where):
    """Name ``where`` in the error of a step inside it that the reading cannot follow."""
    try:
        yield
    except _Unfollowed as error:
        error.where.insert(0, where)
        raise


def _affine_map(expressions, scale, offset, step, operations=None):
    """``x * scale + offset`` per column, for every expression; ``operations`` (pairs of an
    operation and its per-column values) is how ``step`` computes it."""
    out = []
    for k, e in enumerate(expressions):
        s, o = float(np.ravel(scale)[k] if np.ndim(scale) else scale), \
            float(np.ravel(offset)[k] if np.ndim(offset) else offset)
        if isinstance(e, _Affine):
            done = None if operations is None or e.operations is None else \
                e.operations + tuple((name, float(np.ravel(values)[k]) if np.ndim(values)
                                      else float(values)) for name, values in operations)
            out.append(_Affine(e.column, e.scale * s, e.offset * s + o, done))
        elif isinstance(e, _Indicator):
            out.append(_Indicator(e.column, e.positions, e.index, e.scale * s,
                                  e.offset * s + o))
        else:
            try:
                values = tuple(float(v) * s + o for v in e.values)
            except (TypeError, ValueError):
                _refuse(step, " (it scales a categorical column of text)")
            out.append(_Coded(e.column, values))
    return out


def _same(a, b):
    try:
        return bool(a == b) or (a != a and b != b)
    except (TypeError, ValueError):
        return False


def _follow(step, expressions, columns):
    """The expressions of the columns ``step`` outputs, given those it receives."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler,
                                       OneHotEncoder, OrdinalEncoder, RobustScaler,
                                       StandardScaler)

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return expressions
    if isinstance(step, Pipeline):
        for name, inner in step.steps:
            with _inside(f"Pipeline step {name!r}"):
                expressions = _follow(inner, expressions, columns)
        return expressions
    if isinstance(step, ColumnTransformer):
        return _follow_column_transformer(step, expressions, columns)
    n = len(expressions)
    # (the operations as each scaler's transform does them on dense rows)
    if isinstance(step, StandardScaler):
        scale = 1.0 / step.scale_ if step.scale_ is not None else np.ones(n)
        mean = step.mean_ if step.with_mean else np.zeros(n)
        operations = ([("sub", step.mean_)] if step.with_mean else []) + \
            ([("div", step.scale_)] if step.scale_ is not None else [])
        return _affine_map(expressions, scale, -mean * scale, step, operations)
    if isinstance(step, MinMaxScaler):
        if step.clip:
            _refuse(step, " (clip=True is not affine)")
        return _affine_map(expressions, step.scale_, step.min_, step,
                           [("mul", step.scale_), ("add", step.min_)])
    if isinstance(step, MaxAbsScaler):
        return _affine_map(expressions, 1.0 / step.scale_, 0.0, step, [("div", step.scale_)])
    if isinstance(step, RobustScaler):
        scale = 1.0 / step.scale_ if step.scale_ is not None else np.ones(n)
        center = step.center_ if step.center_ is not None else np.zeros(n)
        operations = ([("sub", step.center_)] if step.center_ is not None else []) + \
            ([("div", step.scale_)] if step.scale_ is not None else [])
        return _affine_map(expressions, scale, -center * scale, step, operations)
    if isinstance(step, SimpleImputer):
        # The search's rows hold no missing value to impute (those of an instance are
        # refused): the imputer passes them on.
        if len(step.get_feature_names_out()) != n:  # (an indicator of each holed column)
            _refuse(step, " (it adds or drops columns)")
        return expressions
    if isinstance(step, FunctionTransformer):
        if step.func is not None:
            _refuse(step, " (with a function)")
        return expressions
    if isinstance(step, (OneHotEncoder, OrdinalEncoder)):
        if not all(isinstance(e, _Coded) for e in expressions):
            _refuse(step, " (on a numeric column)")
        if getattr(step, "_infrequent_enabled", False):
            _refuse(step, " (with infrequent categories)")
        out = []
        for k, e in enumerate(expressions):
            categories = list(step.categories_[k])
            positions = _positions(e.values, categories)
            if isinstance(step, OrdinalEncoder):
                unknown = step.unknown_value if step.handle_unknown == "use_encoded_value" \
                    else np.nan
                out.append(_Coded(e.column, tuple(
                    float(i) if i >= 0 else float(unknown) for i in positions)))
                continue
            dropped = None if step.drop_idx_ is None else step.drop_idx_[k]
            out.extend(_Indicator(e.column, positions, i) for i in range(len(categories))
                       if dropped is None or i != dropped)
        return out
    _refuse(step)


def _follow_column_transformer(transformer, expressions, columns):
    n_out = sum(s.stop - s.start for s in transformer.output_indices_.values())
    out = [None] * n_out
    for name, step, _ in transformer.transformers_:
        where = transformer.output_indices_[name]
        if where.stop == where.start or (isinstance(step, str) and step == "drop"):
            continue
        taken = transformer._transformer_to_input_indices[name]
        with _inside(f"ColumnTransformer {name!r}"):
            out[where] = _follow(step, [expressions[i] for i in taken],
                                 [columns[i] for i in taken])
    if any(e is None for e in out):
        _refuse(transformer, " (its output columns could not be traced)")
    return out


def _input_expressions(codec, n_features):
    """What the model (or the Pipeline's first step) receives for each column of ``z``."""
    if codec is None or not codec.has_categorical:
        return [_Affine(j) for j in range(n_features)]
    return [_Coded(j, tuple(codec.categories_[j])) if codec.categorical_[j] else _Affine(j)
            for j in range(n_features)]


# ---------------------------------------------------------------------------------------------
# Reading each model kind's trees on its own input features.


def _sklearn_tree(tree_, leaf_scores):
    """Nodes of one fitted ``sklearn.tree`` ``Tree``: (left, right, feature, threshold,
    scores), leaves with ``feature`` -1."""
    left = tree_.children_left.astype(int)
    return (left, tree_.children_right.astype(int), np.where(left >= 0, tree_.feature, -1),
            tree_.threshold.astype(float), leaf_scores)


def _classifier_tree_proba(tree_, n_classes):
    value = tree_.value[:, 0, :n_classes].astype(float)
    total = value.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return value / total


def _read_model(model):
    """(trees, base, is_probability, raw_binary_slope, ties_to_higher) of ``model``, with
    trees as (left, right, feature, threshold, scores) on its input features."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier,
                                  HistGradientBoostingClassifier, RandomForestClassifier)
    from sklearn.tree import DecisionTreeClassifier

    if getattr(model, "classes_", None) is None:  # a function, or no fitted classifier
        raise ValueError(f"search='exact' reads {_SUPPORTED} ({_WHERE}); got "
                         f"{type(model).__name__}.")
    n_classes = len(model.classes_)
    if getattr(model, "n_outputs_", 1) != 1:
        raise ValueError("search='exact' explains single-output classifiers only.")
    if isinstance(model, DecisionTreeClassifier):
        return ([_sklearn_tree(model.tree_, _classifier_tree_proba(model.tree_, n_classes))],
                np.zeros(n_classes), True, None, False)
    if isinstance(model, (RandomForestClassifier, ExtraTreesClassifier)):
        n_trees = len(model.estimators_)
        trees = [_sklearn_tree(t.tree_, _classifier_tree_proba(t.tree_, n_classes) / n_trees)
                 for t in model.estimators_]
        return trees, np.zeros(n_classes), True, None, False
    if isinstance(model, GradientBoostingClassifier):
        if not (isinstance(model.init_, DummyClassifier) or
                (isinstance(model.init_, str) and model.init_ == "zero")):
            raise ValueError("search='exact' cannot read a GradientBoostingClassifier whose "
                             "`init` is an estimator (its start depends on the row).")
        base = model._raw_predict_init(np.zeros((1, model.n_features_in_), np.float32))[0]
        trees = []
        for stage in model.estimators_:
            for k, regressor in enumerate(stage):
                scores = np.zeros((regressor.tree_.node_count, len(base)))
                scores[:, k] = model.learning_rate * regressor.tree_.value[:, 0, 0]
                trees.append(_sklearn_tree(regressor.tree_, scores))
        slope = (2.0 if model.loss == "exponential" else 1.0) if n_classes == 2 else None
        return _binary_as_two(trees, base, slope, ties_to_higher=True)
    if isinstance(model, HistGradientBoostingClassifier):
        if model.is_categorical_ is not None and np.any(model.is_categorical_):
            raise _native_categorical_error("HistGradientBoostingClassifier", None,
                                            "categorical_features=None")
        base = np.ravel(model._baseline_prediction).astype(float)
        trees = []
        for iteration in model._predictors:
            for k, predictor in enumerate(iteration):
                nodes = predictor.nodes
                leaf = nodes["is_leaf"].astype(bool)
                scores = np.zeros((len(nodes), len(base)))
                scores[leaf, k] = nodes["value"][leaf]
                left = np.where(leaf, -1, nodes["left"].astype(int))
                right = np.where(leaf, -1, nodes["right"].astype(int))
                trees.append((left, right, np.where(leaf, -1, nodes["feature_idx"].astype(int)),
                              nodes["num_threshold"].astype(float), scores))
        return _binary_as_two(trees, base, 1.0 if n_classes == 2 else None,
                              ties_to_higher=False)
    module = type(model).__module__.split(".")[0]
    if module == "lightgbm":
        return _read_lightgbm(model, n_classes)
    if module == "xgboost":
        return _read_xgboost(model, n_classes)
    raise ValueError(f"search='exact' reads {_SUPPORTED} ({_WHERE}); got "
                     f"{type(model).__name__}.")


def _compares_in_float32(model):
    """Whether ``model`` (one :func:`_read_model` reads) casts the values it compares to
    float32: scikit-learn's trees do, and XGBoost; HistGradientBoosting and LightGBM compare
    float64 values."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return not (isinstance(model, HistGradientBoostingClassifier) or
                type(model).__module__.split(".")[0] == "lightgbm")


def _boosting_trees(per_tree, n_classes):
    """Trees given as (left, right, feature, threshold, value) with one class each (tree
    ``t`` adds to class ``t % n_classes``; one raw value for two classes)."""
    width = 1 if n_classes == 2 else n_classes
    trees = []
    for t, (left, right, feature, threshold, value) in enumerate(per_tree):
        scores = np.zeros((len(left), width))
        scores[:, t % width] = np.where(left < 0, value, 0.0)
        trees.append((left, right, feature, threshold, scores))
    return trees


def _read_lightgbm(model, n_classes):
    """LightGBM's ``LGBMClassifier``: numeric splits ``x <= threshold`` go left; leaf values
    are raw scores (the average start folded into the first trees)."""
    dump = model.booster_.dump_model()
    per_tree = []
    for info in dump["tree_info"]:
        left, right, feature, threshold, value = [], [], [], [], []

        def visit(node):
            index = len(left)
            for column in (left, right, feature, threshold, value):
                column.append(-1 if column is not threshold and column is not value
                              else np.nan)
            if "split_index" not in node:
                value[index] = node["leaf_value"]
                return index
            if node.get("decision_type") != "<=":
                raise _native_categorical_error(
                    "LightGBM", _feature_name(model, node["split_feature"]),
                    "no categorical_feature, and numeric, not category, columns")
            if node.get("missing_type") == "Zero":
                raise ValueError("search='exact' cannot follow LightGBM's zero_as_missing "
                                 "splits: train it with zero_as_missing=False.")
            feature[index], threshold[index] = node["split_feature"], node["threshold"]
            left[index] = visit(node["left_child"])
            right[index] = visit(node["right_child"])
            return index

        visit(info["tree_structure"])
        per_tree.append(tuple(np.asarray(c) for c in (left, right, feature, threshold,
                                                       value)))
    objective = str(dump.get("objective", ""))
    if n_classes == 2 and not objective.startswith("binary"):
        raise ValueError(f"search='exact' reads LightGBM's binary objective for two classes; "
                         f"got {objective!r}.")
    slope = float(objective.split("sigmoid:")[1].split()[0]) if "sigmoid:" in objective \
        else 1.0
    trees = _boosting_trees(per_tree, n_classes)
    base = np.zeros(1 if n_classes == 2 else n_classes)
    return _binary_as_two(trees, base, slope if n_classes == 2 else None, ties_to_higher=False)


def _native_categorical_error(library, feature, numbers):
    """The error for a model's native categorical splits, which the program does not
    follow; ``numbers``: how the model is trained to take category codes as numbers."""
    if isinstance(feature, str) and re.fullmatch(r"Column_\d+", feature):
        feature = f"input column {feature[7:]} (LightGBM's {feature!r})"
    elif feature is not None:
        feature = f"feature {feature!r}"
    return ValueError(
        f"search='exact' cannot follow {library}'s native categorical splits"
        + (f" (of {feature})" if feature is not None else "") + ": one-hot or ordinal "
        "encode the categorical columns in a Pipeline instead, and train the model on the "
        f"codes as numbers ({numbers}).")


def _feature_name(model, index):
    """The name of a model's input feature ``index`` (its position where it has none)."""
    names = getattr(model, "feature_name_", None) or getattr(model, "feature_names_in_", None)
    return str(names[index]) if names is not None and index < len(names) else index


def _read_xgboost(model, n_classes):
    """XGBoost's ``XGBClassifier``: a split sends ``x < split`` left (float32), which is
    ``x <= `` the float32 just below it; the start (``base_score``) is read back from the
    model's own raw output."""
    import json

    booster = model.get_booster()
    names = booster.feature_names
    # the JSON dump: trees_to_dataframe cannot parse an indicator (bool) column's splits
    per_tree = [_xgboost_tree(json.loads(text), names)
                for text in booster.get_dump(dump_format="json")]
    trees = _boosting_trees(per_tree, n_classes)
    width = 1 if n_classes == 2 else n_classes
    # The start: the model's raw output at a row, less what its trees add there.
    import xgboost

    row = np.zeros((1, model.n_features_in_), np.float32)
    raw = np.ravel(booster.predict(xgboost.DMatrix(row, feature_names=names),
                                   output_margin=True))
    added = np.zeros(width)
    for left, right, feature, threshold, scores in trees:
        node = 0
        while left[node] >= 0:
            node = left[node] if row[0, feature[node]] <= threshold[node] else right[node]
        added += scores[node]
    return _binary_as_two(trees, raw - added, 1.0 if n_classes == 2 else None,
                          ties_to_higher=False)


def _xgboost_tree(root, names):
    """One tree of XGBoost's JSON dump as ``(left, right, feature, threshold, value)``,
    parents before their children. A split sends ``x < split_condition`` (float32) to
    "yes", its left child, which is ``x <=`` the float32 just below it. An indicator (bool)
    column's split has no condition: it sends 0 to its left child, the one XGBoost numbered
    first (its "yes" is the child missing values do not go to, left or right)."""
    left, right, feature, threshold, value = [], [], [], [], []

    def visit(node):
        index = len(left)
        for column in (left, right, feature):
            column.append(-1)
        threshold.append(np.nan)
        value.append(float(node.get("leaf", 0.0)))
        if "leaf" in node:
            return index
        condition = node.get("split_condition", 1.0)  # an indicator's: 0 < 1
        if isinstance(condition, list):
            raise _native_categorical_error("XGBoost", node["split"],
                                            "enable_categorical=False")
        split = node["split"]
        feature[index] = names.index(split) if names else int(split[1:])
        threshold[index] = float(np.nextafter(np.float32(condition), np.float32(-np.inf)))
        children = {child["nodeid"]: child for child in node["children"]}
        first, second = (node["yes"], node["no"]) if "split_condition" in node else \
            sorted(children)
        left[index] = visit(children[first])
        right[index] = visit(children[second])
        return index

    visit(root)
    return tuple(np.asarray(column) for column in (left, right, feature, threshold, value))


def _binary_as_two(trees, base, slope, ties_to_higher):
    """Boosting with one raw value ``F`` for two classes: scores ``(0, F)``."""
    if len(base) != 1:
        return trees, base, False, None, False
    two = [(left, right, feature, threshold, np.hstack([np.zeros_like(scores), scores]))
           for left, right, feature, threshold, scores in trees]
    return two, np.array([0.0, base[0]]), False, slope, ties_to_higher


def numeric_splits(model):
    """``(feature, threshold)`` arrays of the numeric splits of a boosting model whose trees
    also split its own categorical columns (scikit-learn's HistGradientBoosting, LightGBM,
    XGBoost), which :func:`read_tree_ensemble` cannot follow; None for any other model. A
    split sends ``x <= threshold`` left (XGBoost's ``x < split`` in float32: the float32
    just below)."""
    import json

    module = type(model).__module__.split(".")[0]
    features, thresholds = [], []
    if hasattr(model, "_predictors") and getattr(model, "is_categorical_", None) is not None:
        columns = _hist_gradient_boosting_columns(model)
        if columns is None:
            return None
        for iteration in model._predictors:
            for predictor in iteration:
                nodes = predictor.nodes
                numeric = ~nodes["is_leaf"].astype(bool) & ~nodes["is_categorical"].astype(bool)
                features.append(columns[nodes["feature_idx"][numeric].astype(int)])
                thresholds.append(nodes["num_threshold"][numeric].astype(float))
    elif module == "lightgbm" and hasattr(model, "booster_"):
        def visit(node):
            if "split_feature" not in node:
                return
            if node.get("decision_type") == "<=":
                features.append([node["split_feature"]])
                thresholds.append([float(node["threshold"])])
            visit(node["left_child"])
            visit(node["right_child"])

        for info in model.booster_.dump_model()["tree_info"]:
            visit(info["tree_structure"])
    elif module == "xgboost" and hasattr(model, "get_booster"):
        names = model.get_booster().feature_names

        def visit(node):
            condition = node.get("split_condition")
            if isinstance(condition, (int, float)):
                split = node["split"]
                features.append([names.index(split) if names else int(split[1:])])
                thresholds.append([float(np.nextafter(np.float32(condition),
                                                      np.float32(-np.inf)))])
            for child in node.get("children", ()):
                visit(child)

        for text in model.get_booster().get_dump(dump_format="json"):
            visit(json.loads(text))
    else:
        return None
    if not features:
        return np.zeros(0, int), np.zeros(0)
    return np.concatenate(features).astype(int), np.concatenate(thresholds).astype(float)


def pipeline_numeric_splits(estimator, n_features):
    """:func:`numeric_splits` of a model, or of a Pipeline's last step in the columns of
    its input where the steps before hand them on unchanged (``"passthrough"``, an identity
    ``FunctionTransformer``, a ColumnTransformer's passthrough parts: an OrdinalEncoder's
    codes of the categorical columns beside them), the others' splits left out; None where
    there are none."""
    steps = getattr(estimator, "steps", None)
    splits = numeric_splits(frozen_inner(steps[-1][1] if steps else estimator))
    if splits is None or not steps:
        return splits
    source = np.arange(n_features)  # each column's X column, -1 where its values changed
    for _, step in steps[:-1]:
        source = _handed_on(step, source)
        if source is None:
            return None
    feature, threshold = splits
    inside = feature < len(source)
    feature, threshold = feature[inside], threshold[inside]
    kept = source[feature] >= 0
    return source[feature[kept]], threshold[kept]


def _handed_on(step, source):
    """The X column of each output column of ``step`` given columns from ``source`` (-1:
    values changed on the way); None where it cannot be told."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer

    def identity(transformer):  # (a fitted passthrough is an identity FunctionTransformer)
        return transformer is None or (isinstance(transformer, str) and
                                        transformer == "passthrough") or \
            (isinstance(transformer, FunctionTransformer) and transformer.func is None)

    if identity(step):
        return source
    if not isinstance(step, ColumnTransformer) or not hasattr(step, "output_indices_"):
        return None
    width = max((s.stop for s in step.output_indices_.values()), default=0)
    out = np.full(width, -1)
    for name, transformer, _ in step.transformers_:
        outputs = step.output_indices_[name]
        if identity(transformer):
            inputs = np.asarray(step._transformer_to_input_indices[name], dtype=int)
            if len(inputs) != outputs.stop - outputs.start:
                return None
            out[outputs] = source[inputs]
    return out


def _hist_gradient_boosting_columns(model):
    """For each column HistGradientBoosting's trees split, the input column it is: a
    DataFrame's category columns go first through its own ``_preprocessor``; None where its
    columns cannot be told."""
    preprocessor = getattr(model, "_preprocessor", None)
    n_features = len(model.is_categorical_)
    if preprocessor is None:
        return np.arange(n_features)
    order = []
    for _, _, columns in getattr(preprocessor, "transformers_", ()):
        columns = np.asarray(columns)
        if columns.dtype == bool and len(columns) == n_features:
            order.extend(np.flatnonzero(columns))
        elif columns.dtype.kind in "iu":
            order.extend(columns.tolist())
        elif columns.size:
            return None
    return np.asarray(order, int) if sorted(order) == list(range(n_features)) else None


def read_tree_ensemble(estimator, codec, n_features):
    """The :class:`TreeEnsemble` of ``estimator`` on the search's rows.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        One of the supported models, alone or as the last step of a Pipeline whose earlier
        steps are followed (see the module's docstring).
    codec : TableCodec or None
        The explainer's table codec (categorical columns as codes), if any.
    n_features : int
        Columns of the search's rows.

    Raises
    ------
    ValueError
        Naming the model kind or the Pipeline step that cannot be followed.
    """
    from sklearn.pipeline import Pipeline

    expressions = _input_expressions(codec, n_features)
    rule = decision_threshold(estimator)
    if rule is not None:  # a threshold classifier: the trees of its model, its predict's rule
        estimator = rule[0]
    model = estimator = frozen_inner(estimator)
    if isinstance(estimator, Pipeline):
        model = frozen_inner(estimator.steps[-1][1])
        last_rule = decision_threshold(model)
        if last_rule is not None:  # a threshold classifier as the Pipeline's last step
            if rule is not None or isinstance(frozen_inner(last_rule[0]), Pipeline):
                raise ValueError("search='exact' reads one threshold classifier, around a "
                                 "model or a Pipeline, or at a Pipeline's end around a model.")
            rule, model = last_rule, frozen_inner(last_rule[0])
    # the model first: a Pipeline's steps are followed only for a model it reads (a one-hot
    # encoder's thousands of categories cost seconds to follow)
    trees, base, is_probability, slope, ties_to_higher = _read_model(model)
    if isinstance(estimator, Pipeline):
        columns = list(codec.columns_) if codec is not None and codec.columns_ else \
            list(range(n_features))
        for name, step in estimator.steps[:-1]:
            try:
                with _inside(f"Pipeline step {name!r}"):
                    expressions = _follow(step, expressions, columns)
            except _Unfollowed as error:  # the user's: a ValueError, of no private class
                raise ValueError(str(error)) from None
            columns = list(range(len(expressions)))
    if len(expressions) != model.n_features_in_:
        raise ValueError(f"search='exact' traced {len(expressions)} columns to the model, "
                         f"which takes {model.n_features_in_}.")
    roots, lefts, rights, features, thresholds, scores, margins = [], [], [], [], [], [], []
    model_scales, model_offsets, model_thresholds, model_operations = [], [], [], []
    left_codes = {}
    start = 0
    for left, right, feature, threshold, leaf_scores in trees:
        count = len(left)
        roots.append(start)
        inner = left >= 0
        new_feature = np.full(count, -1)
        new_threshold = np.full(count, np.nan)
        new_margin = np.zeros(count)
        model_scale, model_offset = np.full(count, np.nan), np.full(count, np.nan)
        operations = [None] * count
        new_left, new_right = np.where(inner, left + start, -1), np.where(inner, right + start, -1)
        for node in np.flatnonzero(inner):
            expression = expressions[feature[node]]
            t = threshold[node]
            new_feature[node] = expression.column
            if isinstance(expression, _Affine):
                if expression.scale == 0:
                    raise ValueError("search='exact' cannot follow a step that maps a column "
                                     "to a constant.")
                # a * z + b <= t, i.e. z <= (t - b) / a, or z >= it for a < 0: the
                # children swap (a threshold is never met with equality by the answers).
                new_threshold[node] = (t - expression.offset) / expression.scale
                model_scale[node], model_offset[node] = expression.scale, expression.offset
                operations[node] = expression.operations
                # (a threshold past float32's range, LightGBM's 1e300 for missing values,
                # is spaced in float64)
                spacing = np.spacing(abs(t)) if abs(t) > _FLOAT32_MAX else \
                    np.spacing(np.float32(abs(t)))
                # (an infinite threshold, HistGradientBoosting's split of missing values
                # from all others, has no rounding to keep answers out of)
                new_margin[node] = (4 * spacing + 1e-12 * (
                    abs(t) + abs(expression.offset))) / abs(expression.scale) \
                    if np.isfinite(t) else 0.0
                if expression.scale < 0:
                    new_left[node], new_right[node] = new_right[node], new_left[node]
            else:
                values = np.asarray(expression.values, dtype=float)
                if np.isnan(values).any():
                    raise ValueError("search='exact' cannot follow an encoder that does not "
                                     "know some categories the explainer was fitted on.")
                left_codes[node + start] = values <= t
        lefts.append(new_left)
        rights.append(new_right)
        features.append(new_feature)
        thresholds.append(new_threshold)
        margins.append(new_margin)
        model_scales.append(model_scale)
        model_offsets.append(model_offset)
        model_thresholds.append(np.where(np.isnan(model_scale), np.nan, threshold))
        model_operations.extend(operations)
        scores.append(np.where(inner[:, None], 0.0, leaf_scores))
        start += count
    base = np.asarray(base, float)
    if rule is not None:
        base, ties_to_higher = _thresholded(base, is_probability, slope, *rule[1:])
    return TreeEnsemble(roots=np.asarray(roots), left=np.concatenate(lefts),
                        right=np.concatenate(rights), feature=np.concatenate(features),
                        threshold=np.concatenate(thresholds),
                        leaf_scores=np.concatenate(scores), base=base,
                        is_probability=is_probability, margin=np.concatenate(margins),
                        model_scale=np.concatenate(model_scales),
                        model_offset=np.concatenate(model_offsets),
                        model_threshold=np.concatenate(model_thresholds).astype(float),
                        model_operations=model_operations,
                        float32=_compares_in_float32(model),
                        raw_binary_slope=slope, ties_to_higher=ties_to_higher,
                        left_codes=left_codes, thresholded=rule is not None)


def _thresholded(base, is_probability, slope, positive, response, threshold):
    """``(base, ties_to_higher)`` of two classes' scores whose argmax is a threshold
    classifier's ``predict`` (see :func:`~skcem._wrappers.decision_threshold`): the positive
    class wins wherever its response reaches the threshold, ties included."""
    base = base.copy()
    if is_probability:  # p_pos >= t, i.e. p_pos - p_neg >= 2 t - 1
        shift = threshold - 0.5
        base[positive] -= shift
        base[1 - positive] += shift
        return base, positive == 1
    if slope is None:
        raise ValueError("search='exact' reads threshold classifiers of two classes only.")
    # scores (0, F): the positive class's probability is expit(slope * F) or expit(-slope * F)
    if response == "predict_proba":
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"search='exact' cannot read a threshold of {threshold} on "
                             "probabilities: one class is always predicted.")
        cut = np.log(threshold / (1.0 - threshold)) / slope
    else:  # the decision function F itself
        cut = threshold
    # positive 1: F >= cut; positive 0: -F >= cut, F <= -cut
    base[1] -= cut if positive == 1 else -cut
    return base, positive == 1
