"""CEMExplainer: the Contrastive Explanation Method as a scikit-learn transformer."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ._modes import CEM_MODES, MODES
from ._contrastive import BaseContrastiveExplainer, TargetWarning
from ._fista import SolverSettings
from ._tabular import most_frequent_codes, values_by_column
from ._validation import fitted_columns, per_feature
from ._warnings import warn

# Rows given to fit on which the auto-encoder term is checked to be finite.
_RECONSTRUCTION_CHECK_ROWS = 20


class CEMExplainer(BaseContrastiveExplainer):
    """Contrastive explanations: pertinent negatives (PN) or pertinent positives (PP).

    For each instance ``x0`` of class ``t``, a **pertinent negative** is the smallest addition
    to ``x0`` -- features moved away from their no-information value -- that changes the
    predicted class (as in the reference, a changed feature ends farther from the
    no-information value ``v`` than ``x0``: ``|pn - v| > |x0 - v|``, which a feature close to
    ``v`` may also meet on the other side of ``v``); a **pertinent positive** is the smallest
    part of ``x0`` -- features moved towards their no-information value removed -- that still
    has class ``t`` (Dhurandhar et al., 2018). Both are found by FISTA on an elastic-net
    objective with a hinge attack term, and a per-instance binary search on the attack weight
    ``c``; all instances of a batch are optimised together.

    Any classifier with ``predict_proba`` (or a plain function returning probabilities) is
    explained with numpy only: by default by the gradient-free search (see ``search``), or
    through numerical gradients (``gradient="numerical"``). A Keras 3 model (on TensorFlow,
    JAX or torch) or a PyTorch module is differentiated by its framework's autodiff instead;
    ``X`` stays 2-D and is reshaped to the model's input shape inside. Its outputs may be softmax
    probabilities, logits (a softmax is applied), or one sigmoid or logit output for two
    classes (``p = [1 - s, s]``), told apart by the last layer's activation.

    Every explanation reported as found is valid by the estimator's own ``predict`` when it
    has one (some models' ``predict`` disagrees with the argmax of ``predict_proba``, such as
    ``SVC(probability=True)``): the success test asks both. An explanation never equals the
    instance: when ``y`` names a class the model does not predict, that instance gets no PN.

    Parameters
    ----------
    estimator : object, callable or None, default=None
        The classifier to explain. A fitted estimator is used as it is; an unfitted one is
        cloned and fitted on ``fit(X, y)``; ``None`` fits a ``LogisticRegression`` on
        ``(X, y)``. A Keras model is used as it is, with autodiff gradients. Another callable
        is taken as a ``predict_proba`` function. A classifier without ``predict_proba``
        (``SVC``, ``LinearSVC``, ``RidgeClassifier``, ``SGDClassifier(loss="hinge")``) has its
        classes scored by the softmax of its ``decision_function`` (``kappa`` is a margin
        between those scores; answers are still its ``predict``'s other classes; see
        ``estimator_``). A model without ``classes_`` names its
        columns 0, 1, ..., or, given labels ``y`` in ``fit`` that are not such indices,
        their sorted labels. Integer labels below its number of columns are such indices:
        every column is a class, also one ``y`` does not hold. ``fit`` warns of labels that
        the model's predictions on the rows given follow far better in another order (a
        network trained on codes in the data's own order). A Keras model or PyTorch module
        is taken as a classifier.
    mode : {"PN", "PP"}, default="PN"
        Find pertinent negatives or pertinent positives.
    search : {"auto", "fista", "neighbors", "exact"}, default="auto"
        How answers are searched. "fista": the gradient search (FISTA with a search on ``c``).
        "neighbors": the gradient-free search, which starts from the rows given to ``fit`` that the
        model puts in a wanted class, reverts every change that is not needed and bisects the
        numeric ones towards the instance (see the user guide); it needs only the model's
        probabilities (no gradient) and moves categorical columns. "auto": "neighbors" for
        categorical columns that may change and for models without an exact gradient (with
        ``gradient="numerical"``: for trees, forests, boosting, nearest neighbours and any other
        model whose numerical gradient vanishes on the data); "fista" otherwise, completed and
        polished on tables (not for images, nor with an auto-encoder term): rows the gradient
        search leaves unanswered get the gradient-free search's answer, every answer has each
        change that can be reverted alone reverted and the rest bisected towards the instance, and
        the gradient-free answer is kept where it is closer; on a tree model that "exact" reads,
        rows the gradient-free search leaves unanswered get the exact answer (at most 2 s a row).
        ``search_`` tells which search ran. "exact": the proven closest answer for tree models
        (``DecisionTreeClassifier``, ``RandomForestClassifier``, ``ExtraTreesClassifier``,
        ``GradientBoostingClassifier``, ``HistGradientBoostingClassifier``, LightGBM's and
        XGBoost's classifiers when installed, alone or after Pipeline steps of scalers, one-hot and
        ordinal encoders; another step is named in the error), by a mixed-integer program per
        instance solved with HiGHS (:func:`scipy.optimize.milp`): the smallest ``distance`` under
        every constraint, valid by the estimator's ``predict``; its ``gap`` is reported
        (``Explanation.gap``). PNs only (not PPs); ``kappa`` for forests and two-class boosting.
    gradient : {"auto", "exact", "numerical"}, default="auto"
        How a scikit-learn model is differentiated with respect to its input. "exact": its
        exact gradient, one forward and one backward pass per iteration for the whole batch
        (``LogisticRegression``, ``SGDClassifier``, ``MLPClassifier``, discriminant analysis,
        ``GaussianNB``, ``CalibratedClassifierCV`` and ``Pipeline``s of supported scalers,
        projections, feature selectors and element-wise numpy functions; on a table whose
        categorical columns are immutable, any encoder of them in the pipeline's
        ColumnTransformer; an unsupported step is named in the error).
        "numerical": central
        differences of ``predict_proba`` (``2 * n_features`` rows per instance and
        iteration), which ``search="auto"`` then uses. "auto": exact where every step is
        supported, else numerical, where ``search="auto"`` takes the gradient-free search
        (finite differences cost 1.2-134 times its time, median 48, in a benchmark) and
        completes it with the gradient search on the rows it leaves unanswered. Keras models
        and PyTorch modules are always differentiated by autodiff.
    kappa : float in [0, 1), default=0.0
        Margin of the hinge attack term: a PN must push the explained class at least
        ``kappa`` (in probability) below another class, a PP keep it that far above all others.
        Margins are differences of probabilities (Keras logits are turned into probabilities
        first), so ``kappa >= 1`` could never be met and is refused.
    beta : float, default=0.1
        Weight of the L1 term: larger values give sparser explanations.
    feature_range : tuple (min, max), dict or None, default=None
        Bounds of the explanation's features, each a scalar or one value per feature, or a dict
        ``{column: (min, max)}`` for some numeric columns (None for a side left to the data:
        ``{"income": (5000, None)}``), and ``{column: [categories]}`` for categorical ones:
        the categories an answer may take besides the instance's own (``{"job": ["clerk",
        "nurse"]}``, as DiCE's ``permitted_range``; every search keeps to them). What is not
        given is learned: the per-feature minimum and maximum of the data passed to ``fit``.
        An integer column's bounds are rounded inwards to whole numbers (``feature_range_``).
    no_info_val : float, array-like of shape (n_features,), dict or None, default=None
        The value of each feature that carries no information (an image's background). ``None``
        learns it from the data passed to ``fit`` (see ``no_info_type``); a categorical column's
        is its most frequent category (the first in its order where several are as frequent,
        with a warning: a free text's texts are each seen once). A dict ``{column: value}``
        (a category for a categorical column) sets some columns and learns the others. An
        integer column's is rounded to a whole number, as its answers are; a float column's
        learned one to the decimals its values hold (``decimals_``).
    no_info_type : {"median", "mean"}, default="median"
        How ``fit`` learns ``no_info_val`` when it is not given.
    gamma : float, default=0.0
        Weight of the auto-encoder term ``||AE(z) - z||^2`` in the objective that the
        search descends, pulling its iterates towards the data manifold. Needs
        ``autoencoder``. As in the reference, the answer kept for a row is its closest valid
        iterate by the elastic-net distance alone, not by the whole objective: the term
        shapes the path, and a larger ``gamma`` does not promise a smaller reconstruction
        error (measure it with ``autoencoder`` on the answers: in a trial on digits, an
        MLP with a small auto-encoder, the mean reconstruction error of 15 PNs was 3.16 at
        ``gamma=0``, 2.67 at 1, 4.91 at the tutorial's 100). The gradient search only: with
        ``search="auto"`` on a table, ``gamma`` > 0 also turns off the gradient-free steps
        that complete and polish its answers (which trade the term for distance), so fewer
        rows may be found (a trial on wine: 23 of 30 against 29).
    autoencoder : Keras model, PyTorch module, callable or None, default=None
        The auto-encoder of the ``gamma`` term. A Keras model or PyTorch module is
        differentiated by autodiff (whatever the classifier); another callable, mapping rows
        (n, n_features) to their reconstructions (a fitted regressor's ``ae.predict``), by
        finite differences (two calls on the batch per feature and iteration: slow on wide
        data; a scikit-learn transformer ``ae`` as
        ``lambda Z: ae.inverse_transform(ae.transform(Z))``). PN penalises
        ``||AE(a) - a||^2``, PP ``||AE(z) - z||^2`` for the kept part ``z``.
    input_shape : tuple or None, default=None
        Shape of one instance as the Keras model(s) expect it (such as ``(28, 28, 1)``);
        inferred from the model when None. ``X`` has ``prod(input_shape)`` columns. A
        PyTorch module or a subclassed Keras model cannot tell it: rows go to it flat unless
        given (such as ``(1, 28, 28)`` for a ``Conv2d`` network on MNIST).
    device : str, torch.device or None, default=None
        Where a PyTorch model (and auto-encoder) runs, such as "cpu" or "cuda"; None: where
        its parameters are. The user's module is not moved: another device runs a copy.
        For PyTorch models only.
    categorical_features : "auto", array-like or None, default="auto"
        Columns whose values are categories: "auto" takes DataFrame columns of object,
        string, category or bool dtype (and text columns of an array), and the columns a
        fitted ``estimator`` treats as categories itself (``HistGradientBoostingClassifier``'s
        ``is_categorical_``, a LightGBM model's categorical features, also as a Pipeline's last
        step); or names, indices or a
        boolean mask (integer-coded categories); None or [] for none. Answers only take
        categories seen in ``fit``; a changed category counts 1 in the distance. A Keras
        model or PyTorch module takes categories that are numbers (the integer codes of its
        embeddings), as those numbers.
    immutable_features : array-like or None, default=None
        Features that never change in a PN or PP (age, sex, ...): indices, a boolean mask of
        length ``n_features``, or feature names when fitted on a DataFrame. Enforced in the
        optimizer: their gradient and their shrinkage step are masked, so they keep the
        original's exact value.
    directions : dict or None, default=None
        ``{column: "increase" | "decrease" | "any"}``: the only way a numeric column, one of
        an ordered category dtype (in its order) or a bool one (False before True) may
        change (columns by name, or index for arrays); "any", as a column left out, sets no
        limit (a grid may try it).
    distance : {"elastic", "mad"}, default="elastic"
        The distance minimised. "elastic" is the reference's ``||d||_2^2 + beta * ||d||_1``;
        "mad" measures it in units of each feature's median absolute deviation (MAD, learned
        by ``fit``, see :func:`skcem.costs.median_absolute_deviation`): feature-wise
        ``beta / MAD`` for the L1 term, and ``1 / MAD^2`` for the L2 term so that both terms
        measure the same scaled change. A feature's scale then no longer decides whether it
        is changed. The gradient search then runs in MAD units too (learning rate, ``clip``
        and the shrinkage threshold mean the same for every feature; integer columns are
        rounded in their own units).
    feature_weights : dict, array-like of shape (n_features,) or None, default=None
        The cost of each feature's change, multiplied into both terms of ``distance``: a
        change of a feature of weight 2 counts twice, so the answers change it (a PN) or
        keep it (a PP) only where that pays. A dict ``{column: weight}`` (others weigh 1) or
        one positive weight per feature; ``feature_weights_`` holds them, per feature.
    learning_rate_init : float, default=1e-2
        Initial learning rate, decayed polynomially (power 0.5) to 0 over ``max_iterations``.
    max_iterations : int, default=1000
        FISTA iterations for each value of ``c``.
    c_init : float, default=10.0
        Initial weight of the attack term.
    c_steps : int, default=10
        Number of values of ``c`` tried per instance (binary search).
    eps : tuple (eps0, eps1), default=(1e-3, 1e-3)
        Finite-difference steps, as in the reference. ``eps1`` (a scalar or one value per
        feature) is the step for ``dp/dx``. ``eps0`` is validated but not needed: the hinge's
        derivative with respect to the probabilities is exact in closed form here.
    clip : tuple (min, max), default=(-100.0, 100.0)
        Element-wise bounds of the gradient, applied to the attack term and to the
        regularisation terms separately (as the reference does for black-box models).
    update_num_grad : int, default=1
        Recompute the numerical gradient every ``update_num_grad`` iterations only.
    tol : float or None, default=None
        Early stopping. ``None`` runs the reference's fixed iteration count. Otherwise an
        instance stops iterating for the current ``c`` once its objective has improved by less
        than ``tol`` (relative) for ``n_iter_no_change`` iterations, and leaves the search on
        ``c`` once its bracket on ``c`` is within 5%; finished instances cost no more model
        evaluations.
    n_iter_no_change : int, default=50
        The patience window of early stopping.
    momentum : bool or "auto", default="auto"
        FISTA's momentum (Beck and Teboulle, 2009). "auto": on, except with the auto-encoder term
        (``gamma`` > 0), where it is off. Measured ("Performance" in the documentation): with an
        auto-encoder, momentum lets every ``c`` succeed through the auto-encoder term and the PNs
        come out 2 to 3.5 times larger (MNIST tutorial, 32 instances: median L1 52.9 with it, 15.2
        without); without one, turning it off makes PNs larger (digits MLP: +14%). The reference's
        momentum mostly vanishes in a race of two TensorFlow assignments, so ``False`` is closest to
        what it does.
    probe_iterations : int, "auto" or None, default="auto"
        Probing search on ``c``. ``None`` runs every c-step for ``max_iterations`` (the
        reference). An int: the binary search's ``c_steps`` c-steps run
        ``probe_iterations`` iterations each (the learning rate decays over that many), then
        one more c-step runs the full ``max_iterations`` at the smallest ``c`` that succeeded
        (the last ``c`` tried where none did). Every c-step after the first success starts
        from the best answer found so far instead of from ``x0``. "auto":
        ``max_iterations // 10`` when ``c_steps`` > 1, else ``None``. With 100 of 1000
        iterations and 10 c-steps this costs 5 times fewer iterations and model evaluations.
        Measured with ``benchmarks/bench_early_stopping.py`` (iris and breast-cancer
        LogisticRegression, digits MLP, a wine Pipeline on raw features; PN and PP; 40
        instances, ``clip=(-100, 100)``): the same instances found as with the full schedule
        in all eight cases, median L1 within -5% to +5%, median L0 the same or lower; single
        answers differ by -33% to +48% in L1 (10th-90th percentiles), in both directions, as
        much as with ``momentum`` off. At ``clip=(-1000, 1000)`` one iris PP of 40 was lost
        once: an instance that no probe brings to the target gets a single full c-step, at
        the largest ``c`` tried, which may fail where the full search's smaller ``c``
        succeeds. Must be below ``max_iterations``. Set ``None`` for the reference's schedule
        (the smallest answers the search can give, at 5 times the cost).
    batch_size : int or "auto", default="auto"
        Instances optimised together. A black-box batch of the gradient search sends
        ``2 * n_features * batch_size`` rows to ``predict_proba`` in one call. "auto": 64 for
        the gradient search, 1024 for the gradient-free one (whose calls are small), smaller
        where that gives each ``n_jobs`` worker two batches, or the progress bar (``verbose``)
        ten steps (of 64 rows at least).
    n_jobs : int or None, default=None
        Batches explained in parallel by joblib workers (-1: all cores), with the answers
        of ``None`` (one process) in batches of the same size: under ``batch_size="auto"``
        the batches get smaller so that each worker has some, and the gradient search's
        answers may change with the batch (see the user guide). Under
        ``joblib.parallel_config(backend="dask")`` the batches run on a Dask cluster.
        Workers take about a second each to start and receive the model: worth it for
        several batches of seconds each, not for a few small ones (``batch_size`` sets how
        many instances a batch holds).
    verbose : int, default=0
        1 shows a progress bar over batches and c-steps on stderr (tqdm when installed;
        else one line, or off a terminal a line per tenth of the rows);
        2 also logs each c-step's figures to the ``skcem`` logger at INFO level.
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
        A time limit makes the answers of the rows that reach it depend on the machine and
        its load: the same call may return another answer (with its own gap) another time.
    plausibility : float, default=0.0
        Weight of a term that pulls each answer among the rows given to ``fit`` that the
        model puts in its class: the gradient-free steps minimise the distance plus
        ``plausibility * reach * (1 - share)``, where ``share`` is the part of the answer's
        5 nearest rows of that data (in the explainer's distance) that the model puts in
        the answer's class (yNN's measure, :func:`skcem.metrics.explanation_metrics`) and
        ``reach`` the median distance of a move six times as long as the one from one of
        those rows to the nearest one of another class. A change is then reverted or shrunk
        only where it saves more distance than it costs plausibility, and starts are chosen
        among more valid candidates, rows of the class left whole by the constraints
        among them. A row left unanswered gets the answer of the search without the term,
        where that finds one. 0 (the
        default) turns the term off: the answers are the search's without it. 1 is the
        recommended setting: on UCI Adult it raised the PNs' yNN from 0.33-0.62 to
        0.76-0.89 (DiCE random's counterfactuals: 0.70-0.87) for a mean MAD-L1 of 5.1-7.9
        instead of 4.0-7.7 (DiCE's: 38-46), at 2-22 times the time (a PN never takes a
        column's no-information category, such as the most frequent relationship: the
        rows of its class left whole by that rule start it among its class). PNs only: a PP
        keeps the instance's class, and is refused. It needs the gradient-free steps:
        ``search="neighbors"``, or "auto" on a table (after the gradient search, the
        gradient-free answer is taken where it costs less); elsewhere it is refused.
        ``share`` moves in fifths, so the term acts as a switch past small weights: in a
        trial on wine and breast cancer the answers moved with the weight up to about 0.3
        (a forest on wine: yNN 0.09 at 0, 0.62 at 0.1, 0.89 at 0.2) and were the same from
        there to 1e6; and, the search being heuristic, a larger weight can give a row an
        answer that costs more under it than a smaller weight's did (7 of 30 rows of
        wine from 0.2 to 1). ``score`` does not measure plausibility (it rewards small
        changes): tune the weight with a ``scoring`` that does, such as yNN.

    Attributes
    ----------
    estimator_ : object
        The fitted classifier that is explained; one without ``predict_proba``, inside a
        wrapper whose ``predict_proba`` is the softmax of its ``decision_function`` (a binary
        one's single score ``s``: ``[1 - expit(s), expit(s)]``), its model in ``.estimator``.
    classes_ : ndarray of shape (n_classes,)
        Its classes.
    no_info_val_ : ndarray of shape (n_features,)
        The no-information value of each feature: ``no_info_val`` as given, or learned by
        ``fit`` (see ``no_info_val``). A categorical column's is the code of its category,
        an index into ``categories_[j]``.
    feature_range_ : tuple of two ndarrays of shape (n_features,)
        The lowest and highest value of each feature: ``feature_range`` as given, or the
        training data's where not given.
    immutable_mask_ : ndarray of bool, shape (n_features,)
        True for the features that never change.
    directions_ : ndarray of int, shape (n_features,)
        +1 (only increase), -1 (only decrease) or 0 per feature.
    categorical_mask_ : ndarray of bool, shape (n_features,)
        The columns explained as categories.
    decimals_ : ndarray of int, shape (n_features,)
        The decimals that every value of a float column given to ``fit`` holds (0: whole
        numbers in a float array; -1: none found, fewer than three distinct values, or a
        categorical or integer column). A changed cell of such a column is rounded to them,
        the nearest value first, else one step further the answer's way, where the model
        keeps the answer's class (otherwise the search's own value stays).
    categories_ : list
        The categories of each categorical column (None for numeric columns).
    search_ : {"fista", "neighbors", "exact"}
        The search used.
    mad_ : ndarray of shape (n_features,)
        Median absolute deviation of each feature (``distance="mad"`` only).
    feature_weights_ : ndarray of shape (n_features,)
        Each feature's weight in the distance (``feature_weights``; 1 where not given).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during ``fit``. Defined only when ``X`` has feature names
        that are all strings.

    See Also
    --------
    skcem.metrics : validity, sparsity and proximity of the explanations.

    Notes
    -----
    Differences from the reference (alibi 0.9.6 ``CEM``), all deliberate:

    - whole batches of instances are optimised at once, each with its own ``c`` and bracket;
    - the black-box gradient of the attack term uses the exact derivative of the hinge for the
      mode at hand (the reference uses the PN hinge's activity for PPs too, which is why it
      finds no black-box PP on iris);
    - ``clone`` keeps a fitted ``estimator`` as it is (like ``sklearn.frozen.FrozenEstimator``):
      ``GridSearchCV`` over ``beta``, ``kappa`` or ``c_init`` then explains the model it was
      given, with no ``y`` needed. An unfitted ``estimator`` is cloned as usual;
    - a PP is ``x0 - a + clip(no_info_val, *feature_range)``, which is the reference's
      ``x0 - a`` when the no-information value is 0 and stays between the no-information value
      and ``x0`` otherwise (see ``skcem._modes``).

    References
    ----------
    .. [1] A. Dhurandhar et al., "Explanations based on the Missing: Towards Contrastive
       Explanations with Pertinent Negatives", NeurIPS 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcem import CEMExplainer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> cem = CEMExplainer(clf, mode="PN", max_iterations=200, c_steps=5).fit(X)
    >>> exp = cem.explain(X[[60]])
    >>> bool(exp.found[0]), int(exp.X_pred[0]), int(exp.explanation_pred[0])
    (True, 1, 0)
    >>> sorted(exp.changes()[0])  # the features the PN moves
    ['x0', 'x2']
    """

    _parameter_constraints: dict = {
        **BaseContrastiveExplainer._parameter_constraints,
        "mode": [StrOptions(set(CEM_MODES))],
        "kappa": [Interval(Real, 0, 1, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "no_info_val": [Real, "array-like", dict, None],
        "no_info_type": [StrOptions({"median", "mean"})],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "autoencoder": [callable, HasMethods(["predict"]), None],
        "distance": [StrOptions({"elastic", "mad"})],
        "c_init": [Interval(Real, 0, None, closed="neither")],
        "c_steps": [Interval(Integral, 1, None, closed="left")],
        "momentum": ["boolean", StrOptions({"auto"})],
    }
    _not_found_hint = ("Try a larger c_init (10x: features on a large scale have small "
                       "gradients) together with a wider clip (the gradients are clipped to "
                       "it, which caps what a larger c can do: clip=(-1000, 1000) with "
                       "c_init=100 is a start), then more c_steps or "
                       "max_iterations.")

    def __init__(self, estimator=None, *, mode="PN", search="auto", gradient="auto", kappa=0.0,
                 beta=0.1, feature_range=None, no_info_val=None, no_info_type="median",
                 gamma=0.0, autoencoder=None, input_shape=None, device=None,
                 categorical_features="auto",
                 immutable_features=None, directions=None, distance="elastic",
                 feature_weights=None, learning_rate_init=1e-2, max_iterations=1000,
                 c_init=10.0, c_steps=10,
                 eps=(1e-3, 1e-3), clip=(-100.0, 100.0), update_num_grad=1, tol=None,
                 n_iter_no_change=50, momentum="auto", probe_iterations="auto", batch_size="auto",
                 n_jobs=None, verbose=0, max_time=10.0, plausibility=0.0):
        self.estimator = estimator
        self.mode = mode
        self.search = search
        self.gradient = gradient
        self.kappa = kappa
        self.beta = beta
        self.feature_range = feature_range
        self.no_info_val = no_info_val
        self.no_info_type = no_info_type
        self.gamma = gamma
        self.autoencoder = autoencoder
        self.input_shape = input_shape
        self.device = device
        self.categorical_features = categorical_features
        self.immutable_features = immutable_features
        self.directions = directions
        self.distance = distance
        self.feature_weights = feature_weights
        self.learning_rate_init = learning_rate_init
        self.max_iterations = max_iterations
        self.c_init = c_init
        self.c_steps = c_steps
        self.eps = eps
        self.clip = clip
        self.update_num_grad = update_num_grad
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.probe_iterations = probe_iterations
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.max_time = max_time
        self.plausibility = plausibility

    def _autoencoder(self):
        return self.autoencoder

    def _check_reconstructions(self, X):
        """Raise where the auto-encoder term is not finite on the first rows given to fit:
        every iterate's term would be NaN, and no answer found without a word on why."""
        if self.gamma == 0 or self.autoencoder is None or self.search_ != "fista":
            return
        rows = X[:_RECONSTRUCTION_CHECK_ROWS]
        if np.isnan(rows).any():
            rows = rows[~np.isnan(rows).any(axis=1)]
        if not len(rows):
            return
        with np.errstate(all="ignore"):
            loss = np.asarray(self._backend.autoencoder.loss(rows), dtype=float)
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size:
            raise ValueError(f"`autoencoder` returns NaN or infinite values on rows given to "
                             f"fit ({bad.size} of the first {len(rows)}): its term "
                             "||AE(z) - z||^2 would be undefined at every iterate. Check it "
                             "on those rows (their scale, its own preprocessing).")

    def _warn_of_idle_settings(self):
        super()._warn_of_idle_settings()
        if self.gamma > 0 and self.search_ in ("neighbors", "exact"):
            warn(f"gamma={self.gamma:g} weighs the auto-encoder term in the gradient search "
                 f"only; search_={self.search_!r} (chosen for this model or table) returns "
                 "the closest admissible answers without it: search='fista' runs it on a "
                 "model with gradients.")

    def _check_params(self, n_features):
        super()._check_params(n_features)
        if self.autoencoder is not None and not callable(self.autoencoder):
            # a regressor object: clone (GridSearchCV) would unfit it, its bound predict not
            raise ValueError(f"`autoencoder` is a {type(self.autoencoder).__name__}, not a "
                             "callable: pass its method, autoencoder=ae.predict (a regressor "
                             "of the rows onto themselves).")
        if self.gamma > 0 and self.autoencoder is None:
            raise ValueError("`gamma` > 0 needs an `autoencoder`; pass one or set gamma=0.")
        if self.gamma == 0 and self.autoencoder is not None:
            warn("`autoencoder` weighs nothing with gamma=0 (the default): set gamma > 0 (the "
                 "tutorial's 100 on MNIST) for answers that it reconstructs well.")
        if self.plausibility > 0 and self.mode == "PP":
            raise ValueError("`plausibility` pulls a PN or a counterfactual among rows of "
                             "the class it reaches; a PP keeps the instance's class and is "
                             "no such answer: set plausibility=0 with mode='PP'.")

    def _fit_data(self, X):
        self._fit_mad(X, self.distance == "mad")
        self.feature_weights_ = self._feature_weights(X.shape[1])
        self._check_reconstructions(X)
        categorical = self.categorical_mask_
        if self.no_info_val is None or isinstance(self.no_info_val, dict):
            statistic = np.nanmedian if self.no_info_type == "median" else np.nanmean
            learned = statistic(X, axis=0)
            most_frequent = most_frequent_codes(X, categorical)
            for j, (code, _) in most_frequent.items():
                learned[j] = code
            # in the decimals of the column's values, as the answers are (a median of prices
            # in cents: 52.085 is none)
            decimals = np.maximum(self.decimals_, 0)
            places = self.decimals_ >= 0
            learned[places] = np.round(learned[places] * 10.0 ** decimals[places]) / \
                10.0 ** decimals[places]
            self.no_info_val_ = learned if self.no_info_val is None else values_by_column(
                self.no_info_val, X, self._codec, fitted_columns(self), "no_info_val", learned)
            given = np.zeros(X.shape[1], bool) if self.no_info_val is None else ~np.isnan(
                values_by_column(self.no_info_val, X, self._codec, fitted_columns(self),
                                 "no_info_val", np.full(X.shape[1], np.nan)))
            # (not where the user chose it, nor where the column never moves)
            self._warn_of_tied_backgrounds({
                j: tie for j, tie in most_frequent.items()
                if not given[j] and not self.immutable_mask_[j]})
        elif categorical.any():
            raise ValueError("With categorical columns, give `no_info_val` as a dict by column "
                             "(its name, or its position in an array; a category for a "
                             "categorical column), or None.")
        else:
            self.no_info_val_ = per_feature(self.no_info_val, X.shape[1], "no_info_val")
        if self._integer_columns() is not None:  # a whole background for a whole PP
            self.no_info_val_ = self._codec.snap(np.asarray(self.no_info_val_, float)[None])[0]

    def _warn_of_tied_backgrounds(self, most_frequent):
        """Name the categorical columns whose learned no-information value is one of several
        categories as frequent as it (a free text's: every text seen once)."""
        tied = [(j, code, n_tied) for j, (code, n_tied) in most_frequent.items()
                if n_tied > 1]
        if not tied:
            return
        codec = self._codec
        said = "; ".join(f"{codec._name(j)!r}: {n_tied} categories tie, "
                         f"{codec.categories_[j][int(code)]!r} is taken"
                         for j, code, n_tied in tied[:3])
        warn(f"The no-information value of a categorical column is its most frequent "
             f"category, and in {len(tied)} column(s) several are as frequent ({said}): the "
             "background a PP keeps what differs from, and a PN moves away from, is then an "
             "arbitrary one of them. Give no_info_val={column: category} for one that means "
             "'no information'.")

    def _targets(self, predicted, proba, y, index=None):
        if y is None:
            return predicted, predicted
        target = self._class_indices(y, len(predicted))
        disagree = target != predicted
        if disagree.any():
            warn(f"y differs from the model's prediction for {int(disagree.sum())} of "
                 f"{len(target)} instances; each is explained against its y.",
                 TargetWarning)
        return target, target

    def _problem_settings(self):
        # feature_weights_ from fit; a clone read before fit weighs every feature alike
        weights = getattr(self, "feature_weights_", 1.0)
        if self.distance == "mad":
            l1_weight, l2_weight = weights * self.beta / self.mad_, weights / self.mad_**2
        else:
            l1_weight, l2_weight = weights * float(self.beta), weights * 1.0
        if self.mode == "PP" and self.immutable_mask_.any():
            # A PP keeps its immutable features by construction: no part of its distance
            # (nor of what it keeps, in changes() and the metrics).
            held = self.immutable_mask_
            l1_weight = np.where(held, 0.0, np.broadcast_to(l1_weight, held.shape))
            l2_weight = np.where(held, 0.0, np.broadcast_to(l2_weight, held.shape))
        return dict(mode=MODES[self.mode], no_info_val=self.no_info_val_, kappa=float(self.kappa),
                    l1_weight=l1_weight, l2_weight=l2_weight, gamma=float(self.gamma))

    def _solver_settings(self):
        return SolverSettings(
            learning_rate_init=self.learning_rate_init, max_iterations=self.max_iterations,
            c_init=self.c_init, c_steps=self.c_steps, clip=tuple(map(float, self.clip)),
            update_num_grad=self.update_num_grad, tol=self.tol,
            n_iter_no_change=self.n_iter_no_change, momentum=self._momentum(),
            probe_iterations=self._probe_iterations())

    def _momentum(self):
        """``momentum``, where "auto" is off with the auto-encoder term, else on."""
        if self.momentum != "auto":
            return bool(self.momentum)
        return self.gamma == 0  # gamma > 0 needs an autoencoder (_check_params)
