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
