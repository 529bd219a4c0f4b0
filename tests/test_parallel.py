import threading
import warnings

import joblib
import numpy as np
import pytest

from skcem import CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning

PARAMS = dict(mode="PN", max_iterations=150, c_steps=4, clip=(-1e3, 1e3), batch_size=5)


def _explain(cem, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return cem.explain(X)


def test_n_jobs_gives_the_same_explanations(iris, iris_model):
    X, _ = iris
    rows = X[::8]
    serial = _explain(CEMExplainer(iris_model, **PARAMS).fit(X), rows)
    parallel = _explain(CEMExplainer(iris_model, n_jobs=2, **PARAMS).fit(X), rows)
    np.testing.assert_array_equal(serial.found, parallel.found)
    np.testing.assert_array_equal(serial.explanation, parallel.explanation)
    np.testing.assert_array_equal(serial.c, parallel.c)
    assert serial.meta["n_model_rows"] == parallel.meta["n_model_rows"]


def test_n_jobs_none_runs_in_a_joblib_contexts_workers(iris, iris_model, monkeypatch):
    """Found by a user: inside joblib.parallel_config(n_jobs=2), n_jobs=None cut the rows
    into batches for two workers, then ran them all in this process (scikit-learn's None
    means one job unless in a joblib context); n_jobs=0 failed in joblib, not at fit."""
    import threading

    import skcem._contrastive as contrastive

    X, _ = iris
    rows = X[::8]
    params = {**PARAMS, "batch_size": "auto"}
    serial = _explain(CEMExplainer(iris_model, **params).fit(X), rows)
    threads = set()
    solve_batch = contrastive._solve_batch

    def recorded(*args, **kwargs):
        threads.add(threading.get_ident())
        return solve_batch(*args, **kwargs)

    monkeypatch.setattr(contrastive, "_solve_batch", recorded)
    explainer = CEMExplainer(iris_model, **params).fit(X)
    with joblib.parallel_config(backend="threading", n_jobs=2):
        in_context = _explain(explainer, rows)
    assert threading.get_ident() not in threads and len(threads) >= 1
    np.testing.assert_array_equal(serial.found, in_context.found)
    np.testing.assert_array_equal(serial.explanation, in_context.explanation)
    with pytest.raises(ValueError, match="'n_jobs' parameter"):
        CEMExplainer(iris_model, n_jobs=0).fit(X)


def test_dask_backend_runs_the_same_batches(iris, iris_model):
    distributed = pytest.importorskip("dask.distributed")
    X, _ = iris
    rows = X[::10]
    serial = _explain(CEMExplainer(iris_model, **PARAMS).fit(X), rows)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            on_dask = _explain(CEMExplainer(iris_model, n_jobs=-1, **PARAMS).fit(X), rows)
        assert client.scheduler_info()["workers"]
    np.testing.assert_array_equal(serial.found, on_dask.found)
    np.testing.assert_array_equal(serial.explanation, on_dask.explanation)


def test_similarity_training_gradients_on_a_dask_cluster(iris, iris_model):
    """The training gradients spread over a Dask cluster give the one-process scores."""
    from skcem import GradientSimilarityExplainer

    distributed = pytest.importorskip("dask.distributed")
    X, y = iris
    params = dict(precompute_grads=True, batch_size=16, sim_fn="grad_cos")
    serial = GradientSimilarityExplainer(iris_model, **params).fit(X, y)
    expected = serial.kneighbors(X[::30], n_neighbors=5)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            spread = GradientSimilarityExplainer(iris_model, n_jobs=-1, **params).fit(X, y)
        assert client.scheduler_info()["workers"]
    scores, indices = spread.kneighbors(X[::30], n_neighbors=5)
    np.testing.assert_array_equal(indices, expected[1])
    np.testing.assert_allclose(scores, expected[0], rtol=1e-12)


def test_n_jobs_and_progress_follow_the_rows_of_one_auto_batch(capsys):
    """The gradient-free search's default batch (1024 rows) would hold every row of a few
    hundred: the workers get batches of their own, and the progress bar counts rows."""
    import skcem._contrastive as contrastive
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(20, random_state=0).fit(X, y)
    rows = X[:300]
    serial = _explain(CEMExplainer(forest, mode="PN").fit(X), rows)
    assert serial.meta["search"] == "neighbors"
    sizes = []
    solve_batch = contrastive._solve_batch

    def spy(explainer, x0, *args, **kwargs):
        sizes.append(len(x0))
        return solve_batch(explainer, x0, *args, **kwargs)

    contrastive._solve_batch = spy
    try:
        with joblib.parallel_config(backend="threading"):
            parallel = _explain(CEMExplainer(forest, mode="PN", n_jobs=2).fit(X), rows)
    finally:
        contrastive._solve_batch = solve_batch
    assert len(sizes) >= 4 and sum(sizes) == 300
    np.testing.assert_array_equal(parallel.found, serial.found)
    np.testing.assert_array_equal(parallel.explanation, serial.explanation)

    capsys.readouterr()
    _explain(CEMExplainer(forest, mode="PN", verbose=1).fit(X), rows)
    shown = capsys.readouterr().err.replace("\r", "\n").split()
    counts = [word for word in shown if "/" in word]
    assert counts[-1] == "300/300" and len(counts) >= 5


def test_plain_progress_writes_a_line_per_update_off_a_terminal(monkeypatch, capsys):
    # without tqdm: a log file got one long line of carriage returns
    import builtins

    from skcem._progress import progress_bar

    real_import = builtins.__import__

    def without_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tqdm)
    bar = progress_bar(3, "explain", True, unit="row")
    for _ in range(3):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [f"explain: {k}/3 rows" for k in (1, 2, 3)]
    # fractions of a step (the similarity's blocks of training rows) write no line of their
    # own: 47 lines of "0/1" and "1/1" before
    bar = progress_bar(2, "scores", True)
    for _ in range(40):
        bar.update(2 / 40)
    bar.close()
    assert capsys.readouterr().err.splitlines() == ["scores: 1/2", "scores: 2/2"]
    # found by a user: a line per few rows, 110 lines for 640 rows in a log file
    bar = progress_bar(1000, "explain", True, unit="row")
    for _ in range(110):
        bar.update(1000 / 110)
    bar.close()
    assert capsys.readouterr().err.splitlines() == [f"explain: {k}/1000 rows"
                                                    for k in range(100, 1001, 100)]


class _OpenMPRecording:
    """A scikit-learn model's ``predict_proba`` that records the OpenMP threads it may use."""

    def __init__(self, predict_proba):
        self.predict_proba, self.threads = predict_proba, []

    def __call__(self, X):
        from threadpoolctl import threadpool_info

        self.threads.append({info["num_threads"] for info in threadpool_info()
                             if info["user_api"] == "openmp"})
        return self.predict_proba(X)


def test_fit_and_explain_ask_a_scikit_learn_model_on_one_openmp_thread(monkeypatch):
    # Its questions are many and small: OpenMP threads cost more to wake than the rows take
    # (histogram gradient boosting's fit took 65 s against 1 s on a busy machine).
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info

    from skcem import CounterfactualExplainer

    openmp = [info for info in threadpool_info() if info["user_api"] == "openmp"]
    if not openmp or max(info["num_threads"] for info in openmp) < 2:
        pytest.skip("no OpenMP library of several threads loaded")
    X, y = make_classification(300, 5, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    recording = _OpenMPRecording(model.predict_proba)
    monkeypatch.setattr(model, "predict_proba", recording, raising=False)
    explainer = CounterfactualExplainer(model).fit(X)
    assert recording.threads and all(threads == {1} for threads in recording.threads)
    # explain too: its calls outside the search (the rows' own classes, the final checks)
    # took many times longer on a busy machine
    recording.threads.clear()
    explainer.explain(X[:5])
    assert recording.threads and all(threads == {1} for threads in recording.threads)
    # and the user's own setting is back afterwards
    assert [info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "openmp"] == [info["num_threads"] for info in openmp]


def test_threads_explaining_at_once_leave_the_warning_filters_as_they_were():
    """Found by a user serving explanations from two threads: skcem's
    ``warnings.catch_warnings`` blocks (around model calls), entered and left out of order by
    two threads, put back each other's filters, and "ignore" filters stayed for good,
    silencing scikit-learn's warnings (and skcem's) in the user's own code."""
    import threading

    pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    from tests.test_tables import make_table, pipeline

    X, y = make_table(300)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    explainer = CEMExplainer(model, mode="PN", max_iterations=50, c_steps=2).fit(X)
    errors = []

    def explain_rows(start):
        try:
            for i in range(start, start + 40):
                explainer.explain(X.iloc[[i]])
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        before = list(warnings.filters)
        threads = [threading.Thread(target=explain_rows, args=(start,)) for start in (0, 100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = list(warnings.filters)
    assert not errors
    assert after == before


def test_score_silences_its_own_searchs_warnings_and_no_other_threads(iris):
    """score() quietens the not-found warnings of the explanations it scores in its own
    thread only (skcem's silencing, not a process-wide filter, which would silence another
    thread's explain too, and which threads leave behind)."""
    import threading

    from sklearn.linear_model import LogisticRegression

    from skcem._warnings import silencing

    X, y = iris
    model = LogisticRegression(max_iter=1000).fit(X, y)
    explainer = CEMExplainer(model, mode="PN", immutable_features=[1, 2, 3]).fit(X)
    rows = X[50:70]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        explainer.score(rows)
        assert list(warnings.filters) == before
        assert not [w for w in caught if issubclass(w.category, ExplanationNotFoundWarning)]
        found = []
        with silencing(ExplanationNotFoundWarning):  # as score's, while another thread runs
            beside = threading.Thread(target=lambda: found.append(explainer.explain(rows).found))
            beside.start()
            beside.join()
    assert not found[0].all()
    assert [w for w in caught if issubclass(w.category, ExplanationNotFoundWarning)]


def test_no_model_is_asked_while_the_warning_filters_are_held(monkeypatch):
    """Found by a review: explain held skcem's warning-filters lock around its assembly,
    which asks the model again; a PyTorch module's own lock, held by a similarity search in
    another thread waiting for the filters' lock, then hung both threads for good."""
    from contextlib import contextmanager

    pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    import skcem._contrastive as contrastive
    from tests.test_tables import make_table, pipeline

    held = threading.local()
    plain = contrastive.filters_held

    @contextmanager
    def recorded():
        held.now = True
        try:
            with plain():
                yield
        finally:
            held.now = False

    monkeypatch.setattr(contrastive, "filters_held", recorded)
    X, y = make_table(300)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    asked_while_held = []
    for name in ("predict", "predict_proba"):
        method = getattr(model, name)
        setattr(model, name, lambda rows, method=method: asked_while_held.append(
            getattr(held, "now", False)) or method(rows))
    try:
        explainer = CounterfactualExplainer(model, n_counterfactuals=2).fit(X)
        asked_while_held.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer.explain(X.iloc[:5])
    finally:
        del model.predict, model.predict_proba
    assert asked_while_held and not any(asked_while_held)
