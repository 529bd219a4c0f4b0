"""Golden test: skcem's black-box CEM against a plain one-instance reference of the CEM
paper's algorithm."""
import numpy as np
import pytest

from skcem import CEMExplainer

EPS1 = 1e-3


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


W3 = np.array([[1.5, -0.5, 0.8, 0.0], [-0.7, 1.2, 0.0, 0.6], [0.0, -0.4, -1.1, 0.9]])
B3 = np.array([0.2, -0.1, 0.0])
W2 = np.array([[1.3, -0.9, 0.5]])
B2 = np.array([-0.2])


def softmax3(Z):
    """Fixed 3-class softmax over a linear map of 4 features."""
    return _softmax(np.asarray(Z, float) @ W3.T + B3)


def logistic2(Z):
    """Fixed 2-class logistic model of 3 features."""
    p1 = 1.0 / (1.0 + np.exp(-(np.asarray(Z, float) @ W2.T + B2)))
    return np.hstack([1.0 - p1, p1])


def attack_grad_z(proba, z, t, mode, kappa):
    """Exact hinge derivative in p times the central-difference Jacobian dp/dz."""
    p = proba(z[None])[0]
    others = p.copy()
    others[t] = -np.inf
    m = int(np.argmax(others))
    sign = 1.0 if mode == "PN" else -1.0
    if sign * (p[t] - p[m]) + kappa <= 0:
        return np.zeros_like(z)
    dfdp = np.zeros_like(p)
    dfdp[t], dfdp[m] = sign, -sign
    jac = np.empty((p.size, z.size))
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = EPS1
        jac[:, i] = (proba((z + e)[None])[0] - proba((z - e)[None])[0]) / (2 * EPS1)
    return dfdp @ jac


def reference_cem(proba, x0, mode, kappa, beta, c_init, c_steps, max_iterations, lr_init,
                  v, lo, hi, clip, momentum=True, decay=True, lr_shrink=False, probe=None):
    """One-instance CEM: FISTA per c, binary search on c.

    With ``probe``, the ``c_steps`` c-steps run ``probe`` iterations each, every one after the
    first success starting from the best answer so far, then one c-step runs
    ``max_iterations`` at the smallest successful c (the last c tried if none succeeded).

    Returns
    -------
    explanation, found, distance, c_best : the best successful z(a) over all c (NaN if none).
    """
    bg = np.clip(v, lo, hi)
    t = int(np.argmax(proba(x0[None])[0]))
    z_of = (lambda a: a) if mode == "PN" else (lambda a: x0 + bg - a)
    dz_da = 1.0 if mode == "PN" else -1.0

    def project(a):
        if mode == "PN":
            keep = np.abs(a - v) > np.abs(x0 - v)
        else:
            keep = ((a - v) * (x0 - v) >= 0) & (np.abs(a - v) <= np.abs(x0 - v))
        return np.where(keep, a, x0)

    def success(a):
        p = proba(z_of(a)[None])[0]
        if mode == "PN":
            return int(np.argmax(p + kappa * np.eye(p.size)[t])) != t
        return int(np.argmax(p - kappa * np.eye(p.size)[t])) == t

    c, lower, upper = c_init, 0.0, 1e10
    best_dist, best_a, best_c = np.inf, None, np.nan
    last_c = c
    for step in range(c_steps + (probe is not None)):
        final = probe is not None and step == c_steps
        if final:
            c = upper if upper < 1e9 else last_c
        iterations = max_iterations if probe is None or final else probe
        start = x0 if probe is None or best_a is None else best_a
        a, s, succeeded = start.copy(), start.copy(), False
        last_c = c
        for k in range(iterations):
            lr = lr_init * ((1 - k / iterations) ** 0.5 if decay else 1.0)
            g_att = dz_da * attack_grad_z(proba, z_of(s), t, mode, kappa)
            grad = np.clip(c * g_att, *clip) + np.clip(2 * (s - x0), *clip)
            u = s - lr * grad
            thr = beta * lr if lr_shrink else beta
            new = np.where(u - x0 > thr, np.minimum(u - thr, hi),
                           np.where(u - x0 < -thr, np.maximum(u + thr, lo), x0))
            new = project(new)
            # skcem keeps the slack point where the iterates may be (inside the range or at
            # x0), so that the model is never asked about a row outside feature_range; the
            # reference's step 5 extrapolates without that clip.
            s = project(np.clip(new + ((k + 1) / (k + 4) if momentum else 0.0) * (new - a),
                                np.minimum(lo, x0), np.maximum(hi, x0)))
            a = new
            if success(a):
                succeeded = True
                dist = np.sum((a - x0) ** 2) + beta * np.sum(np.abs(a - x0))
                if dist < best_dist:
                    best_dist, best_a, best_c = dist, a.copy(), c
        if succeeded:
            upper = min(upper, c)
        else:
            lower = max(lower, c)
        c = (lower + upper) / 2 if upper < 1e9 else (c if succeeded else 10 * c)
    if best_a is None:
        return np.full_like(x0, np.nan), False, np.nan, np.nan
    return z_of(best_a), True, best_dist, best_c


RNG = np.random.default_rng(0)
X4 = RNG.normal(size=(40, 4))
X3 = RNG.normal(size=(40, 3))

CASES = {
    "pn3": (softmax3, X4, "PN", dict(kappa=0.1, beta=0.05, c_init=1.0, c_steps=4,
                                     max_iterations=60, learning_rate_init=0.1,
                                     no_info_val=0.0, feature_range=(-3.0, 3.0),
                                     clip=(-5.0, 5.0))),
    "pp3": (softmax3, X4, "PP", dict(kappa=0.05, beta=0.05, c_init=1.0, c_steps=4,
                                     max_iterations=60, learning_rate_init=0.1,
                                     no_info_val=0.0, feature_range=(-3.0, 3.0),
                                     clip=(-5.0, 5.0))),
    "pn2": (logistic2, X3, "PN", dict(kappa=0.0, beta=0.1, c_init=10.0, c_steps=3,
                                      max_iterations=50, learning_rate_init=0.05,
                                      no_info_val=np.array([0.1, -0.2, 0.0]),
                                      feature_range=(-2.5, 2.5), clip=(-100.0, 100.0))),
    "pp2": (logistic2, X3, "PP", dict(kappa=0.1, beta=0.1, c_init=10.0, c_steps=3,
                                      max_iterations=50, learning_rate_init=0.05,
                                      no_info_val=np.array([0.1, -0.2, 0.0]),
                                      feature_range=(-2.5, 2.5), clip=(-100.0, 100.0))),
}


def _reference(name, **variant):
    """The reference on the first four rows of a case, optionally with one ingredient changed."""
    proba, X, mode, kw = CASES[name]
    return [reference_cem(proba, x0, mode, kw["kappa"], kw["beta"], kw["c_init"], kw["c_steps"],
                          kw["max_iterations"], kw["learning_rate_init"], kw["no_info_val"],
                          *kw["feature_range"], kw["clip"], **variant)
            for x0 in X[:4]]


def _assert_same_answers(exp, ref):
    """skcem's explanations, found mask, distances and best c are the reference's."""
    assert np.array_equal(exp.found, [r[1] for r in ref])
    assert exp.found.any()
    np.testing.assert_allclose(exp.explanation, np.array([r[0] for r in ref]),
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(exp.distance, [r[2] for r in ref], rtol=0, atol=1e-8)
    np.testing.assert_allclose(exp.c, [r[3] for r in ref], rtol=1e-12)


@pytest.mark.filterwarnings("ignore::skcem.ExplanationNotFoundWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference(name):
    """skcem's explanations, found mask, distances and best c equal the reference's."""
    proba, X, mode, kw = CASES[name]
    # search="fista": the reference's optimizer alone, without what "auto" adds after it.
    exp = CEMExplainer(proba, mode=mode, eps=(1e-3, EPS1), search="fista", momentum=True,
                       probe_iterations=None, **kw).fit(X).explain(X[:4])
    ref = _reference(name)
    _assert_same_answers(exp, ref)


@pytest.mark.filterwarnings("ignore::skcem.ExplanationNotFoundWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_default_probing_search_matches_reference(name):
    """At the defaults (no auto-encoder: momentum on; probe_iterations="auto": a tenth of
    max_iterations per probe, warm starts, one full c-step) skcem is the probing reference."""
    proba, X, mode, kw = CASES[name]
    exp = CEMExplainer(proba, mode=mode, eps=(1e-3, EPS1), search="fista", **kw).fit(
        X).explain(X[:4])
    ref = _reference(name, probe=kw["max_iterations"] // 10)
    _assert_same_answers(exp, ref)


@pytest.mark.parametrize("variant", [dict(momentum=False), dict(decay=False),
                                     dict(lr_shrink=True), dict(probe=5)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cases_are_sensitive(name, variant):
    """Each case's answer moves by far more than the tolerance without each ingredient."""
    ref = np.array([r[0] for r in _reference(name)])
    alt = np.array([r[0] for r in _reference(name, **variant)])
    assert np.nanmax(np.abs(np.nan_to_num(alt, nan=9.0) - np.nan_to_num(ref, nan=9.0))) > 1e-3
