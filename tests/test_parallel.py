import warnings

import joblib
import numpy as np
import pytest

from skcem import CEMExplainer, ExplanationNotFoundWarning

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
