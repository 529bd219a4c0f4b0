import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

# Small budgets keep the suite fast; the algorithm is the same at any budget.
FAST = dict(max_iterations=300, c_steps=5)


@pytest.fixture(scope="session")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def iris_model(iris):
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="session")
def digits_model(digits):
    X, y = digits
    return MLPClassifier((32,), max_iter=400, random_state=0).fit(X[:1200], y[:1200])


@pytest.fixture(scope="session")
def digits_test(digits):
    X, y = digits
    return X[1200:1212]


def softmax_model_gradient(model, Z, cotangent):
    """Analytic ``sum_k w_k dp_k/dz`` of a multinomial logistic regression."""
    proba = model.predict_proba(Z)
    weighted = proba * cotangent
    # dp_k/dz = p_k (W_k - sum_j p_j W_j)
    return weighted @ model.coef_ - weighted.sum(axis=1, keepdims=True) * (proba @ model.coef_)


def small_mixed_forest():
    """A table of integers, a number and two categories (a user's), and a forest of four
    depth-3 trees behind a one-hot encoder, whose votes can tie 2-2: ``(X, model)``."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(1)
    n = 120
    X = pd.DataFrame({"a": rng.randint(0, 20, n), "b": rng.randint(0, 50, n),
                      "c": rng.randn(n), "color": rng.choice(["red", "green", "blue"], n),
                      "shape": rng.choice(["sq", "ci"], n)})
    y = ((X.a + X.b / 3 + 3 * X.c + 5 * (X.color == "red") + 4 * (X.shape == "sq"))
         > 16).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["color", "shape"]),
                                                  remainder="passthrough"),
                          RandomForestClassifier(4, max_depth=3, random_state=0)).fit(X, y)
    return X, model
