import numpy as np

from skcem._modes import MODES
from skcem._fista import shrink, update_c


def test_shrink_thresholds_relative_to_x0_and_clips_the_moving_side():
    x0 = np.array([[0.0, 0.0, 0.0, 5.0]])
    s = np.array([[0.5, 0.05, -0.5, 0.0]])
    out = shrink(s, x0, beta=0.1, lower=-0.3, upper=1.0)
    # up by more than beta: s - beta; within beta: x0; down: max(s + beta, lower)
    np.testing.assert_allclose(out, [[0.4, 0.0, -0.3, 0.1]])


def test_shrink_keeps_out_of_range_original_on_the_side_it_does_not_move():
    x0 = np.array([[2.0]])  # outside the range [0, 1]
    np.testing.assert_allclose(shrink(np.array([[2.05]]), x0, 0.1, 0.0, 1.0), [[2.0]])
    np.testing.assert_allclose(shrink(np.array([[1.5]]), x0, 0.1, 0.0, 1.0), [[1.6]])
    np.testing.assert_allclose(shrink(np.array([[2.5]]), x0, 0.1, 0.0, 1.0), [[1.0]])


def test_projection_pn_adds_pp_removes():
    x0 = np.array([[1.0, 1.0, 1.0, 1.0]])
    v = 0.0
    candidate = np.array([[2.0, 0.5, -0.5, -2.0]])
    # PN: only moves that end farther from v than x0
    np.testing.assert_allclose(MODES["PN"].project(candidate, x0, v), [[2.0, 1.0, 1.0, -2.0]])
    # PP: only moves towards v that do not cross it
    np.testing.assert_allclose(MODES["PP"].project(candidate, x0, v), [[1.0, 0.5, 1.0, 1.0]])


def test_success_test_uses_kappa_margin():
    proba = np.array([[0.45, 0.55], [0.6, 0.4]])
    target = np.array([0, 0])
    np.testing.assert_array_equal(MODES["PN"].is_success(proba, target, 0.0), [True, False])
    np.testing.assert_array_equal(MODES["PN"].is_success(proba, target, 0.2), [False, False])
    np.testing.assert_array_equal(MODES["PP"].is_success(proba, target, 0.0), [False, True])
    np.testing.assert_array_equal(MODES["PP"].is_success(proba, target, 0.3), [False, False])
    np.testing.assert_array_equal(MODES["CF"].is_success(proba, np.array([1, 1]), 0.0),
                                  [True, False])


def test_success_needs_predict_agreement_and_a_change():
    proba = np.array([[0.45, 0.55], [0.45, 0.55]])
    target = np.array([0, 0])
    pn = MODES["PN"]
    np.testing.assert_array_equal(pn.is_success(proba, target, 0.0, pred=np.array([1, 0])),
                                  [True, False])
    np.testing.assert_array_equal(
        pn.is_success(proba, target, 0.0, changed=np.array([False, True])), [False, True])


def test_c_search_bisects_after_success_and_grows_tenfold_before_any():
    c = np.array([10.0, 10.0])
    lower, upper = np.zeros(2), np.full(2, 1e10)
    c, lower, upper = update_c(c, lower, upper, np.array([True, False]))
    np.testing.assert_allclose(c, [5.0, 100.0])
    np.testing.assert_allclose(upper, [10.0, 1e10])
    np.testing.assert_allclose(lower, [0.0, 10.0])
    c, lower, upper = update_c(c, lower, upper, np.array([False, True]))
    np.testing.assert_allclose(c, [7.5, 55.0])
    np.testing.assert_allclose(lower, [5.0, 10.0])
    np.testing.assert_allclose(upper, [10.0, 100.0])
