"""CounterfactualExplainer: the closest instance of another class (ceml's regularized cost)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._modes import ANY_OTHER_CLASS, MODES
from ._contrastive import BaseContrastiveExplainer
from ._fista import SolverSettings
from ._validation import align_rows
from ._warnings import warn


class CounterfactualExplainer(BaseContrastiveExplainer):
    """Counterfactuals: the closest instance that the model puts in a target class.

    Minimises ceml's regularized cost ``C * distance(x, x0) + NLL(target | x)`` (the model's
    cross-entropy at the target class) for whole batches of instances with the optimizer and
    gradient backends of :class:`CEMExplainer`: exact gradients for the scikit-learn models
    it differentiates, numerical ones for any ``predict_proba`` (``gradient="numerical"``;
    by default such a model gets the gradient-free search), autodiff for Keras models and
    PyTorch modules. L1-type distances are handled by a
    proximal (soft-thresholding) step of ``learning_rate * C``, which makes counterfactuals
    sparse. Among the iterates that
    reach the target class, the closest is returned; an instance that never reaches it gets a
    NaN row (and a warning).

    A fixed ``C`` cannot suit every scale of data (on standardised features a ``C`` of 1 may
    pin every feature), so the weight of the cross-entropy, ``c`` (1 in ceml's cost), is
    searched as :class:`CEMExplainer` searches its ``c``: multiplied by 10 while no
    counterfactual is found, then bisected towards the smallest weight that still finds one
    (the closest counterfactuals), for ``c_steps`` values. ``c_steps=1`` is ceml's cost as it
    is. The reported ``distance`` is the plain distance of the change, never weighted by
    ``C`` or ``c``. Instances already of their target class get no counterfactual (a warning
    says how many): the instance itself would be the trivial answer.

    Parameters
    ----------
    estimator : object, callable or None, default=None
        As for :class:`CEMExplainer`.
    target_class : "other", int, str or array-like of shape (n_samples,), default="other"
        The class each counterfactual must have: "other" is any class but the instance's own
        (the model's prediction), so that each answer is the closest one found of whichever
        class it reaches (``explanation_pred`` says which; the gradient and gradient-free
        searches are heuristics, which may end in one class where another's answer is
        closer; ``search="exact"`` proves the closest of all other classes), a class label
        applies to all instances, an array
        gives one label per instance explained (same length as ``X`` in ``explain``; the
        way to target a class labelled "other", with a warning in ``fit`` otherwise); a
        pandas Series follows the index of a DataFrame ``X`` (it may label more rows than
        ``X`` has; with the default index, by position).
    search : {"auto", "fista", "neighbors", "exact"}, default="auto"
        As for :class:`CEMExplainer` ("exact": the proven closest counterfactual of the
        target class for a tree model, with its ``gap``).
    gradient : {"auto", "exact", "numerical"}, default="auto"
        As for :class:`CEMExplainer`.
    distance : {"l1", "l2", "mad"}, default="l1"
        ``||x - x0||_1``, ``||x - x0||_2^2``, or the L1 distance in units of each feature's
        median absolute deviation (learned by ``fit``), for which the gradient search runs
        in MAD units (its learning rate, ``clip`` and shrinkage mean the same for every
        feature, whatever its scale).
    C : float, default=1.0
        Weight of the distance against the cross-entropy, in the gradient search (the
        gradient-free and exact searches return the closest admissible answers).
    c_steps : int, default=5
        Values of the cross-entropy's weight ``c`` tried per instance (from 1, see above).
    n_counterfactuals : int, default=1
        Distinct valid counterfactuals per instance in the explanation's ``counterfactuals``:
        the closest first (``explanation``), then, closest first, sparse ones that change other
        features where there are. With more than one, the gradient-free steps refine twice
        ``n_counterfactuals`` starts (training rows of the class) and the answers that make one
        or two moves alone (a start's category, a numeric feature's range end), and keep
        distinct ones (fewest changes first, on features no kept answer changes first); after
        the gradient search, its answer competes with the gradient-free steps' (the closest is
        ``explanation``). Two answers that change the same features, to the same categories and
        numbers within 10% of the change or one farther than the other the same way in every
        feature, count as one. Each answer is minimal (its numeric changes bisected towards the
        instance), so the same features moved farther are not offered: an instance may get fewer
        where fewer distinct answers were found (NaN rows). On tree models, and other models
        of the gradient-free search (nearest neighbours...), the answers are polished more
        coarsely than a single one (fewer split points, no exchanges: each is a model call),
        so the closest of several may be farther than ``n_counterfactuals=1``'s answer, or
        closer (it has more starts): on a forest in a trial, 4 of 10 rows farther (by
        0.3-49%), 2 closer; a user found one row of a one-hot table 21 times farther (0.27
        against 0.0125), another a k-nearest-neighbours digit 22% farther. Where the closest
        answer matters most, ask for one.
    feature_weights : dict, array-like of shape (n_features,) or None, default=None
        The cost of each feature's change, multiplied into ``distance``: a unit change of a
        feature of weight 2 (or a change of its category) counts twice, so the answers change
        it only where that pays (a feature that is hard to act on, as DiCE's
        ``feature_weights``). A dict ``{column: weight}`` (others weigh 1) or one positive
        weight per feature; every search minimises, and ``Explanation.distance`` reports,
        the weighted distance. ``feature_weights_`` holds them, per feature. A categorical
        column weighed above 1 also gets the gradient-free search starts that keep it; an
        answer that avoids it only by moving several numeric features far may still be
        missed (1 of 40 rows of a trial at weight 100, against 16 without those starts).
    categorical_features : "auto", array-like or None, default="auto"
        Columns whose values are categories: "auto" takes DataFrame columns of object,
        string, category or bool dtype (and text columns of an array), and the columns a
        fitted ``estimator`` treats as categories itself (``HistGradientBoostingClassifier``'s
        ``is_categorical_``, a LightGBM model's categorical features, also as a Pipeline's last
        step); or names, indices or a
        boolean mask (integer-coded categories); None or [] for none. Answers only take
        categories seen in ``fit``; a changed category counts 1 in the distance.
    immutable_features : array-like or None, default=None
        Features that never change: indices, a boolean mask, or names (DataFrame input).
    directions : dict or None, default=None
        ``{column: "increase" | "decrease" | "any"}``: the only way a numeric column, one of
        an ordered category dtype (in its order) or a bool one (False before True) may
        change (columns by name, or index for arrays); "any", as a column left out, sets no
        limit (a grid may try it).
    feature_range : tuple (min, max), dict or None, default=None
        Bounds of the counterfactual's features, or a dict ``{column: (min, max)}`` for some
        numeric columns and ``{column: [categories]}`` for categorical ones (the categories
        an answer may take besides the instance's own, as DiCE's ``permitted_range``);
        learned from the data where not given. An integer column's bounds are rounded
        inwards to whole numbers.
    input_shape : tuple or None, default=None
        Shape of one instance for a Keras model or PyTorch module (inferred from a Keras
        model that can tell it; flat rows otherwise, unless given).
    device : str, torch.device or None, default=None
        Where a PyTorch model runs ("cpu", "cuda"); None: where its parameters are. Another
        device than theirs runs a copy of the module. For PyTorch models only.
    learning_rate_init : float, default=1e-2
        Initial learning rate, decayed polynomially (power 0.5) to 0 over ``max_iterations``.
    max_iterations : int, default=1000
        Gradient-search iterations for each value of ``c``.
    eps : tuple (eps0, eps1), default=(1e-3, 1e-3)
        As for :class:`CEMExplainer`.
    clip : tuple (min, max), default=(-100.0, 100.0)
        As for :class:`CEMExplainer`.
    update_num_grad : int, default=1
        As for :class:`CEMExplainer`.
    tol : float or None, default=None
        As for :class:`CEMExplainer`.
    n_iter_no_change : int, default=50
        As for :class:`CEMExplainer`.
    probe_iterations : int, "auto" or None, default=None
        As for :class:`CEMExplainer`, whose default ("auto") was measured on CEM only; here
        the default runs the full schedule.
    batch_size : int or "auto", default="auto"
        As for :class:`CEMExplainer`.
    n_jobs : int or None, default=None
        As for :class:`CEMExplainer`.
    verbose : int, default=0
        As for :class:`CEMExplainer`.
    max_time : float, default=10.0
        ``search="exact"``: seconds per instance, all its programs together (the
        gradient-free search that first gives each a valid answer, whose distance bounds them,
        comes on top; HiGHS looks at the clock between its steps, and may overrun it by
        seconds: its presolve's probing does not look (3.4 s for a program's last 1 s on a
        200-tree forest's 30,000 columns, in a trial); a program too large to read in the
        time left is not started). Past it the best answer found so far is returned with its
        proven relative gap to the optimum (``Explanation.gap`` above 0), or none when none
        was found yet.
        ``search="auto"`` gives the programs that complete the rows its searches leave
        unanswered (tree and linear models) ``max_time`` but at most 2 s a row.
    plausibility : float, default=0.0
        Weight of the term that pulls each answer among the rows given to ``fit`` that the
        model puts in its class, as for :class:`CEMExplainer` (what the term is, and how
        the gradient-free steps weigh it). 0 (the default) turns the term off. 1 is the
        recommended setting: on UCI Adult it raised the counterfactuals' yNN from 0.40-0.47
        to 0.93-0.99 for a mean MAD-L1 of 3.8-4.8 instead of 2.2-3.5 (DiCE random: yNN
        0.70-0.87, MAD-L1 38-46), at 1.5-12 times the time; answers then keep changes that
        the class alone does not need. It needs the gradient-free steps:
        ``search="neighbors"``, or "auto" on a table (after the gradient search, the
        gradient-free answer is taken where it costs less); elsewhere it is refused. With
        ``n_counterfactuals`` > 1 the answers are ranked by that cost. Small weights (0.1
        to 0.3) trade in steps, larger ones act as a switch (see :class:`CEMExplainer`);
        ``score`` does not measure plausibility.

    Attributes
    ----------
    estimator_, classes_, feature_range_, immutable_mask_
        As for :class:`CEMExplainer`.
    directions_, categorical_mask_, decimals_, categories_, search_
        As for :class:`CEMExplainer`.
    n_features_in_, feature_names_in_
        As for :class:`CEMExplainer`.
    mad_ : ndarray of shape (n_features,)
        Only with ``distance="mad"``.
    feature_weights_ : ndarray of shape (n_features,)
        Each feature's weight in the distance (``feature_weights``; 1 where not given).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import CounterfactualExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> cf = CounterfactualExplainer(clf, target_class=2, C=0.1).fit(X)
    >>> exp = cf.explain(X[50:52])
    >>> [int(c) for c in exp.explanation_pred]
    [2, 2]
    """

    _parameter_constraints: dict = {
        **BaseContrastiveExplainer._parameter_constraints,
        "target_class": [StrOptions({"other"}), Integral, Real, "boolean", str, "array-like"],
        "distance": [StrOptions({"l1", "l2", "mad"})],
        "C": [Interval(Real, 0, None, closed="left")],
        "c_steps": [Interval(Integral, 1, None, closed="left")],
        "n_counterfactuals": [Interval(Integral, 1, None, closed="left")],
    }
    _not_found_hint = ("Try a smaller C, more max_iterations or a larger "
                       "learning_rate_init.")

    def __init__(self, estimator=None, *, target_class="other", search="auto", gradient="auto",
                 distance="l1", C=1.0, c_steps=5, n_counterfactuals=1, feature_weights=None,
                 categorical_features="auto",
                 immutable_features=None, directions=None, feature_range=None,
                 input_shape=None, device=None, learning_rate_init=1e-2, max_iterations=1000,
                 eps=(1e-3, 1e-3), clip=(-100.0, 100.0), update_num_grad=1, tol=None,
                 n_iter_no_change=50, probe_iterations=None, batch_size="auto", n_jobs=None,
                 verbose=0, max_time=10.0, plausibility=0.0):
        self.estimator = estimator
        self.target_class = target_class
        self.search = search
        self.gradient = gradient
        self.distance = distance
        self.C = C
        self.c_steps = c_steps
        self.n_counterfactuals = n_counterfactuals
        self.feature_weights = feature_weights
        self.categorical_features = categorical_features
        self.immutable_features = immutable_features
        self.directions = directions
        self.feature_range = feature_range
        self.input_shape = input_shape
        self.device = device
        self.learning_rate_init = learning_rate_init
        self.max_iterations = max_iterations
        self.eps = eps
        self.clip = clip
        self.update_num_grad = update_num_grad
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.probe_iterations = probe_iterations
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.max_time = max_time
        self.plausibility = plausibility

    def _fit_data(self, X):
        self._fit_mad(X, self.distance == "mad")
        self.feature_weights_ = self._feature_weights(X.shape[1])
        if isinstance(self.target_class, str) and self.target_class == "other" and \
                any(isinstance(c, str) and c == "other" for c in self.classes_):
            warn("target_class='other' means any class but the instance's, and the model "
                 "also has a class labelled 'other': to target that class, give one label "
                 "per instance (target_class=['other'] * n_rows).")

    def _warn_of_idle_settings(self):
        super()._warn_of_idle_settings()
        if self.C != 1.0 and self.search_ in ("neighbors", "exact"):
            warn(f"C={self.C:g} weighs the distance against the cross-entropy in the gradient "
                 f"search only; search_={self.search_!r} (chosen for this model or table) "
                 "returns the closest admissible answers whatever C.")

    def _any_other_class(self):
        """Whether the target is any class but the instance's (more than two classes)."""
        return isinstance(self.target_class, str) and self.target_class == "other" and \
            len(self.classes_) > 2

    def _targets(self, predicted, proba, y, index=None):
        if y is not None:
            warn("CounterfactualExplainer.explain ignores y: the class each counterfactual "
                 "reaches is set by `target_class` (set_params(target_class=...)).")
        if self._any_other_class():  # the target is the class to leave
            return predicted, predicted
        if isinstance(self.target_class, str) and self.target_class == "other":
            return predicted, 1 - predicted
        labels = align_rows(self.target_class, index, "target_class")
        if isinstance(labels, (dict, set)):
            raise ValueError(f"`target_class` must be 'other', a class or one class per row "
                             f"(a list or array); got a {type(labels).__name__}.")
        if np.ndim(labels) == 0:
            labels = np.full(len(proba), labels, dtype=object)
        elif isinstance(labels, (list, tuple)):
            labels = np.array(labels, dtype=object)  # numpy would make [2, "a"] strings
        per_row_other = [v for v in np.ravel(labels) if isinstance(v, str) and v == "other"]
        if per_row_other and not any(isinstance(c, str) and c == "other" for c in self.classes_):
            raise ValueError("`target_class` holds 'other' among labels: 'other' (any class "
                             "but the instance's) applies to all rows, as target_class='other'; "
                             f"a list gives each row one of the classes {self.classes_.tolist()}.")
        return predicted, self._class_indices(labels, len(proba), name="target_class")

    def _required_class(self, target):
        if isinstance(self.target_class, str) and self.target_class == "other":
            return None
        return np.asarray(self.classes_, dtype=object)[target]

    def _problem_settings(self):
        # feature_weights_ from fit; a clone read before fit weighs every feature alike
        weights = getattr(self, "feature_weights_", 1.0)
        if self.distance == "l2":
            l1_weight, l2_weight = 0.0, weights
        elif self.distance == "mad":
            l1_weight, l2_weight = weights / self.mad_, 0.0
        else:
            l1_weight, l2_weight = weights, 0.0
        mode = ANY_OTHER_CLASS if self._any_other_class() else MODES["CF"]
        return dict(mode=mode, no_info_val=np.zeros(self.n_features_in_), kappa=0.0,
                    l1_weight=l1_weight, l2_weight=l2_weight, distance_weight=float(self.C))

    def _solver_settings(self):
        # ceml's cost is c = 1 on the cross-entropy; the search starts there.
        return SolverSettings(
            learning_rate_init=self.learning_rate_init, max_iterations=self.max_iterations,
            c_init=1.0, c_steps=self.c_steps, clip=tuple(map(float, self.clip)),
            update_num_grad=self.update_num_grad, tol=self.tol,
            n_iter_no_change=self.n_iter_no_change, momentum=True, threshold_times_lr=True,
            probe_iterations=self._probe_iterations())
