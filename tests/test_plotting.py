import warnings
from dataclasses import replace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skcem import (CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning,  # noqa
                   GradientSimilarityExplainer)
from skcem import plotting  # noqa: E402

from .conftest import FAST  # noqa: E402


@pytest.fixture(scope="module")
def digit_pn(digits, digits_model, digits_test):
    X, _ = digits
    cem = CEMExplainer(digits_model, mode="PN", no_info_val=0.0, feature_range=(0.0, 1.0),
                       **FAST).fit(X[:1200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return cem.explain(digits_test[:3])


def test_image_explanation_draws_original_explanation_and_change(tmp_path, digit_pn):
    i = int(np.argmax(digit_pn.found))
    fig = plotting.plot_image_explanation(digit_pn, index=i)
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_title().startswith(f"original: {digit_pn.X_pred[i]} (")
    assert axes[1].get_title().startswith(f"PN: {digit_pn.explanation_pred[i]} (")
    np.testing.assert_allclose(axes[0].images[0].get_array(), digit_pn.X[i].reshape(8, 8))
    np.testing.assert_allclose(axes[1].images[0].get_array(),
                               digit_pn.explanation[i].reshape(8, 8))
    np.testing.assert_allclose(axes[2].images[0].get_array(), digit_pn.delta[i].reshape(8, 8))
    fig.savefig(tmp_path / "pn.png")
    assert (tmp_path / "pn.png").stat().st_size > 1000
    plt.close(fig)


def test_image_explanation_on_given_axes(digit_pn):
    fig, axes = plt.subplots(2, 3)
    assert plotting.plot_image_explanation(digit_pn, axes=axes[1]) is fig
    assert all(ax.images for ax in axes[1]) and not any(ax.images for ax in axes[0])
    with pytest.raises(ValueError, match="3 axes"):
        plotting.plot_image_explanation(digit_pn, axes=axes[0][:2])
    plt.close(fig)


def test_bad_index_and_image_shape_get_errors_naming_them(digit_pn):
    with pytest.raises(ValueError, match=r"`image_shape` \(4, 4\) holds 16 values, but the "
                                         r"instances have 64 features"):
        plotting.plot_image_explanation(digit_pn, image_shape=(4, 4))
    for plot in (plotting.plot_image_explanation, plotting.plot_tabular_explanation):
        with pytest.raises(ValueError, match=r"`index` must be the position of an explained "
                                             r"instance, 0 to 2; got 3"):
            plot(digit_pn, index=3)
        with pytest.raises(ValueError, match=r"got True"):  # found by a user: drew row 1
            plot(digit_pn, index=True)
    plt.close("all")


def test_tabular_explanation_bars_follow_the_changes(iris, iris_model):
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PN", clip=(-1e3, 1e3), **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = cem.explain(X[[0, 60, 120]])
    i = int(np.argmax(exp.found))
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    fig = plotting.plot_tabular_explanation(exp, index=i, feature_names=names)
    ax = fig.axes[0]
    heights = [patch.get_width() for patch in ax.patches]
    # each change as a share of its feature's range, so that features of other scales
    # compare (in raw units a year beside dollars did not show)
    lower, upper = cem.feature_range_
    np.testing.assert_allclose(heights, exp.delta[i] / (upper - lower))
    assert "share of the feature's range" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert f"-> {exp.explanation_pred[i]} (" in ax.get_title()
    # each change labelled from -> to, readable whatever its scale beside the others
    changed_features = np.flatnonzero(np.abs(exp.delta[i]) > 1e-12)
    assert [t.get_text() for t in ax.texts] == [
        f" {exp.X[i, j]:.4g} → {exp.explanation[i, j]:.4g}" for j in changed_features]
    changed = plotting.plot_tabular_explanation(exp, index=i, only_changed=True)
    assert len(changed.axes[0].patches) == int(np.sum(np.abs(exp.delta[i]) > 1e-12))
    with pytest.raises(ValueError, match=r"`feature_names` must name the 4 features; got 2"):
        plotting.plot_tabular_explanation(exp, index=i, feature_names=names[:2])
    plt.close("all")


def test_similarity_shows_most_and_least_similar(digits, digits_model):
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model, sim_fn="grad_cos").fit(X[:60], y[:60])
    exp = explainer.explain(X[1300:1302])
    fig = plotting.plot_similarity(exp, explainer.X_train_, index=1, n_most=2, n_least=1)
    axes = fig.axes
    assert len(axes) == 4
    order = exp.ordered_indices[1]
    np.testing.assert_allclose(axes[1].images[0].get_array(), X[:60][order[0]].reshape(8, 8))
    np.testing.assert_allclose(axes[3].images[0].get_array(), X[:60][order[-1]].reshape(8, 8))
    assert f"{exp.scores[1, order[0]]:.3g}" in axes[1].get_title()
    assert axes[3].get_title().startswith("least similar")
    plt.close(fig)
    # On axes the caller gives: drawn there, in the caller's figure.
    given, grid = plt.subplots(2, 2)
    assert plotting.plot_similarity(exp, explainer.X_train_, index=1, n_most=2,
                                    axes=grid) is given
    np.testing.assert_allclose(grid[0, 1].images[0].get_array(),
                               X[:60][order[0]].reshape(8, 8))
    with pytest.raises(ValueError, match="`axes` must hold 4 axes; got 3"):
        plotting.plot_similarity(exp, explainer.X_train_, n_most=2, axes=grid.ravel()[:3])
    plt.close("all")


def test_tabular_plot_labels_category_changes():
    pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    from skcem import CounterfactualExplainer
    from skcem.plotting import plot_tabular_explanation
    from tests.test_tables import make_table, pipeline

    X, y = make_table(300)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    exp = CounterfactualExplainer(model).fit(X).explain(X.iloc[:20])
    i = next(i for i, row in enumerate(exp.changes())
             if any(" → " in str(v) for v in row.values()))
    fig = plot_tabular_explanation(exp, index=i, only_changed=True)
    texts = [t.get_text().strip() for t in fig.axes[0].texts]
    expected = [v for v in exp.changes()[i].values() if isinstance(v, str)]
    assert sorted(texts) == sorted(expected)
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close(fig)


def test_similarity_bars_are_labelled_with_the_columns(iris, iris_model):
    pd = pytest.importorskip("pandas")
    X, y = iris
    names = ["sl", "sw", "pl", "pw"]
    frame = pd.DataFrame(X, columns=names)
    explainer = GradientSimilarityExplainer(iris_model).fit(X, y)
    exp = explainer.explain(X[:2])
    fig = plotting.plot_similarity(exp, frame, n_most=1, n_least=1)
    assert len(fig.axes) == 3
    # horizontal bars, the columns named once, on the first panel (repeated rotated names
    # overlapped on every panel)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    for ax in fig.axes[1:]:
        assert all(t.get_text() == "" for t in ax.get_yticklabels())
    np.testing.assert_allclose([p.get_width() for p in fig.axes[0].patches], X[0])
    assert fig.axes[0].get_title() == f"test: predicted {exp.target[0]}"  # no y given
    plt.close(fig)
    given = explainer.explain(X[:2], y[:2])
    fig = plotting.plot_similarity(given, frame, n_most=1, n_least=1)
    assert fig.axes[0].get_title() == f"test: target {y[0]}"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"X_train must be the 150 training rows .* got "
                                         r"shape \(10, 4\)"):
        plotting.plot_similarity(exp, frame.iloc[:10])
    # more rows asked than there are: each drawn once
    small = GradientSimilarityExplainer(iris_model).fit(X[:6], y[:6]).explain(X[:1])
    fig = plotting.plot_similarity(small, X[:6], n_most=4, n_least=4)
    titles = [ax.get_title().split("#")[1].split(":")[0] for ax in fig.axes[1:]]
    assert len(titles) == 6 and len(set(titles)) == 6
    with pytest.raises(ValueError, match=r"`input_shape` \(3, 3\) holds 9 values, but the "
                                         r"instances have 4 features"):
        CEMExplainer(iris_model, **FAST).fit(X).explain(X[:1]).as_images((3, 3))
    plt.close("all")


def test_titles_name_the_models_own_classes_and_images_take_frames():
    # an SVC's predict need not be its most probable class: titles named the latter; a
    # DataFrame's row was read as a column
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    # (measurements to more decimals than iris's one: the answers are the searches' own,
    # which end where predict and the probabilities part)
    X = X + np.random.default_rng(0).normal(0, 1e-3, X.shape)
    svc = SVC(probability=True, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CEMExplainer(svc, mode="PN").fit(X).explain(X[::3])
    most_probable = svc.classes_[np.argmax(np.nan_to_num(exp.explanation_proba, nan=-1), 1)]
    disagree = [i for i in np.flatnonzero(exp.found)
                if most_probable[i] != exp.explanation_pred[i]]
    assert disagree  # the case the titles got wrong
    i = int(disagree[0])
    title = plotting.plot_tabular_explanation(exp, i).axes[0].get_title()
    assert f"-> {exp.explanation_pred[i]} (" in title
    assert f"class {exp.X_pred[i]} (" in title
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        framed = CEMExplainer(svc, mode="PN").fit(frame).explain(frame.iloc[::3])
    fig = plotting.plot_image_explanation(framed, i, image_shape=(2, 2))
    assert fig.axes[1].get_title().startswith(f"PN: {framed.explanation_pred[i]} (")
    plt.close("all")


def test_change_labels_stay_clear_of_the_feature_names(iris):
    # a label of a bar that grows left was drawn over the features' names
    from sklearn.linear_model import LogisticRegression

    from skcem import CounterfactualExplainer

    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CounterfactualExplainer(model, target_class=0).fit(X).explain(X[[60, 120]])
    for index in range(2):
        assert exp.found[index] and np.any(exp.delta[index] < 0)
        fig = plotting.plot_tabular_explanation(exp, index=index)
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        names = [label.get_window_extent(renderer) for label in ax.get_yticklabels()]
        area = ax.get_window_extent(renderer)
        for text in ax.texts:
            box = text.get_window_extent(renderer)
            assert not any(box.overlaps(name) for name in names)
            assert area.x0 <= box.x0 and box.x1 <= area.x1 + 1
        plt.close(fig)


def test_an_explanation_of_the_other_kind_gets_one_line(iris, iris_model):
    """Found by a user: plot_similarity of a CEM explanation failed on a missing attribute."""
    X, y = iris
    cem = CEMExplainer(iris_model, **FAST).fit(X).explain(X[[60]])
    similarity = GradientSimilarityExplainer(iris_model).fit(X, y).explain(X[[60]])
    with pytest.raises(TypeError, match="plot_similarity takes the result of "
                                        "GradientSimilarityExplainer.explain"):
        plotting.plot_similarity(cem, X)
    for plot in (plotting.plot_tabular_explanation, plotting.plot_image_explanation,
                 plotting.plot_counterfactuals):
        with pytest.raises(TypeError, match=f"{plot.__name__} takes the result of CEMExplainer"):
            plot(similarity)
    plt.close("all")


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_colour_images_are_drawn_in_colour_scaled_and_in_their_layout(layout):
    """Found by a user: a PyTorch image (3, h, w) failed in matplotlib, and colour images
    were clipped to [0, 1] (a PP's change, all negative, drawn black)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    height, width = 4, 5
    images = rng.uniform(-0.5, 0.5, size=(80, height, width, 3))
    y = (images[..., 0].mean(axis=(1, 2)) > 0).astype(int)
    if layout == "channels_first":
        images = np.moveaxis(images, -1, 1)
    shape = images.shape[1:]
    X = images.reshape(len(images), -1)
    model = LogisticRegression().fit(X, y)
    exp = CEMExplainer(model, mode="PP", **FAST).fit(X).explain(X[:3])
    index = int(np.flatnonzero(exp.found)[0])
    fig = plotting.plot_image_explanation(exp, index=index, image_shape=shape)
    original, explained, change = (ax.get_images()[0].get_array() for ax in fig.axes)
    expected = X[index].reshape(shape)
    if layout == "channels_first":
        expected = np.moveaxis(expected, 0, -1)
    assert original.shape == (height, width, 3) and change.shape == (height, width)
    low = min(X[index].min(), exp.explanation[index].min())
    high = max(X[index].max(), exp.explanation[index].max())
    np.testing.assert_allclose(original, (expected - low) / (high - low))
    assert 0 <= np.min(explained) and np.max(explained) <= 1
    delta = exp.delta[index].reshape(shape)
    np.testing.assert_allclose(change, delta.sum(axis=-1 if layout == "channels_last" else 0))
    plt.close("all")


def test_similarity_of_a_dataframe_fit_names_its_columns_and_rows_from_x_train_(iris):
    """Found by a user: plot_similarity(exp, explainer.X_train_), as its docstring says,
    drew bars without names after a fit on a DataFrame, and titled training rows by position
    where to_frame shows their labels."""
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    names = ["sl", "sw", "pl", "pw"]
    frame = pd.DataFrame(X, columns=names, index=np.arange(len(X)) + 1000)
    model = LogisticRegression(max_iter=1000).fit(frame, y)
    explainer = GradientSimilarityExplainer(model).fit(frame, y)
    exp = explainer.explain(frame.iloc[:2])
    fig = plotting.plot_similarity(exp, explainer.X_train_, n_most=1, n_least=1)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    best = int(exp.ordered_indices[0, 0])
    assert fig.axes[1].get_title().endswith(f"{best + 1000}: {exp.scores[0, best]:.3g}")
    assert exp.to_frame(n_most=1)["train_label"].iloc[0] == best + 1000
    plt.close(fig)


def test_similarity_draws_channels_first_colour_images():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.uniform(size=(40, 3 * 4 * 5))
    y = (X[:, :20].mean(axis=1) > 0.5).astype(int)
    exp = GradientSimilarityExplainer(LogisticRegression().fit(X, y)).fit(X, y).explain(X[:2])
    fig = plotting.plot_similarity(exp, X, n_most=1, n_least=1, image_shape=(3, 4, 5))
    drawn = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert all(image.shape == (4, 5, 3) for image in drawn)
    order = exp.ordered_indices[0]
    rows = X[[0]], X[[order[0]]], X[[order[-1]]]
    low, high = min(r.min() for r in rows), max(r.max() for r in rows)
    for image, row in zip(drawn, rows):  # each in colour, all on one scale
        np.testing.assert_allclose(image, (np.moveaxis(row.reshape(3, 4, 5), 0, -1) - low)
                                   / (high - low))
    plt.close("all")


def test_labels_write_large_numbers_in_plain_digits():
    # A user's income change read "2.121e+04 → 3.646e+04".
    from skcem.plotting import _short

    assert _short(21213.4) == "21,213" and _short(-36460.0) == "-36,460"
    assert _short(0.58437) == "0.5844" and _short(2.5e20) == "2.5e+20"
    assert _short(np.float32(12.5)) == "12.5" and _short("basic") == "basic"
    # Found by a user: an amount of 9,999.99 read "1e+04", 54,179.86 "54,180", an integer
    # 82000 had no separator beside "15,292": a column's decimals are kept, every number
    # from 10,000 on separated, a long category cut
    assert _short(9999.99, 2) == "9999.99" and _short(54179.86, 2) == "54,179.86"
    assert _short(66597.9, 2) == "66,597.90" and _short(np.float32(46.51), 2) == "46.51"
    # a day without its midnight (a date column read "2022-04-20 00:00:00 → ...")
    pd = pytest.importorskip("pandas")
    assert _short(pd.Timestamp("2022-04-20")) == "2022-04-20"
    assert _short(pd.Timestamp("2022-04-20 13:05")) == "2022-04-20 13:05:00"
    assert _short(pd.NaT) == "NaT"
    assert _short(9999.99) == "10,000" and _short(np.int64(82000)) == "82,000"
    assert _short(3.0, 0) == "3" and _short(True) == "True"
    assert _short("Self-employed-not-incorporated") == "Self-employed-not-incorpora…"


def test_table_plots_name_the_columns_and_write_their_values_as_held():
    """Found by a user: integer column labels were drawn as x0, x1...; an amount in cents
    lost them; a long category ran past the figure; panels of several counterfactuals were
    sized for every feature where they draw only the changed ones."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from skcem import CounterfactualExplainer

    rng = np.random.default_rng(0)
    n = 300
    jobs = np.array(["clerk", "Self-employed-not-incorporated-and-more"])
    X = pd.DataFrame({10: rng.normal(50_000, 15_000, n).round(2),
                      20: rng.integers(18, 70, n), 30: rng.choice(jobs, n),
                      40: rng.normal(0, 1, n)})
    y = (X[10] / 15_000 + (X[30] == jobs[1]) + X[40] > 4.2).astype(int)
    model = make_pipeline(ColumnTransformer([("numbers", StandardScaler(), [0, 1, 3]),
                                             ("job", OneHotEncoder(), [2])]),
                          LogisticRegression(max_iter=2000)).fit(X, y)
    explainer = CounterfactualExplainer(model, distance="mad", n_counterfactuals=2).fit(X)
    assert explainer.decimals_[0] == 2
    exp = explainer.explain(X.iloc[:40])
    i = int(np.flatnonzero(exp.found & (np.abs(exp.delta[:, 0]) > 0)
                           & (np.abs(exp.delta[:, 2]) > 0))[0])
    fig = plotting.plot_tabular_explanation(exp, index=i)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["10", "20", "30", "40"]
    before, after = exp.X[10].iloc[i], exp.explanation[10].iloc[i]
    assert f" {before:,.2f} → {after:,.2f}" in [t.get_text() for t in ax.texts]
    assert any("Self-employed-not-incorpora… " in t.get_text() + " " for t in ax.texts)
    fig.canvas.draw()
    for label in ax.texts:  # inside the figure
        assert label.get_window_extent().x1 <= fig.bbox.x1 + 1
    plt.close(fig)
    fig = plotting.plot_counterfactuals(exp, index=i)
    drawn = max(len(ax.patches) for ax in fig.axes)
    assert fig.get_figheight() == pytest.approx(0.35 * drawn + 1.5)
    # the class reached, with its probability, as the tabular plot writes it
    reached = exp.explanation_pred[i]
    position = list(exp.classes).index(reached)
    assert f"-> {reached} ({exp.explanation_proba[i, position]:.2f})" in \
        fig.axes[0].get_title()
    # found by a user: the later ranks' classes were drawn as "none"
    assert f"-> {exp.counterfactual_pred[i, 1]}\n" in fig.axes[1].get_title()
    assert all(len(ax.get_xticks()) <= 6 for ax in fig.axes)  # narrow panels, few labels
    plt.close("all")


def test_similarity_images_share_one_scale(digits, digits_model):
    """Found by a user: each grey image was scaled on its own, so a faint digit looked bold."""
    X, y = digits
    explainer = GradientSimilarityExplainer(digits_model).fit(X[:60], y[:60])
    exp = explainer.explain(X[1300:1301] * 0.25)  # a faint test digit
    fig = plotting.plot_similarity(exp, explainer.X_train_, n_most=1, n_least=1)
    limits = {ax.images[0].get_clim() for ax in fig.axes}
    assert len(limits) == 1
    plt.close(fig)


def test_several_counterfactuals_of_images_are_drawn_as_images(digits, digits_model):
    """Found by a user: digits' counterfactuals were drawn as 64 bars a panel, one giant
    bar each; with ``image_shape`` each answer is a row of images, as
    plot_image_explanation draws one."""
    from skcem import CounterfactualExplainer

    X, _ = digits
    explainer = CounterfactualExplainer(digits_model, n_counterfactuals=3).fit(X[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.explain(X[1300:1302])
    fig = plotting.plot_counterfactuals(exp, index=0, image_shape=(8, 8))
    assert len(fig.axes) == 9
    answers = np.asarray(exp.counterfactuals)[0] if exp.counterfactuals.ndim == 3 else \
        np.asarray(exp.counterfactuals.loc[exp.counterfactuals.index[:3]])
    for rank in range(3):
        row = fig.axes[3 * rank:3 * rank + 3]
        if np.isfinite(exp.counterfactual_distance[0, rank]):
            np.testing.assert_allclose(row[1].images[0].get_array(),
                                       answers[rank].reshape(8, 8))
            assert row[1].get_title().startswith(f"rank {rank}: class ")
        else:
            assert row[1].get_title() == f"rank {rank}: none"
    plt.close("all")
    with pytest.raises(ValueError, match="image_shape"):
        plotting.plot_counterfactuals(exp, index=0, image_shape=(7, 7))


def test_a_pps_bars_are_what_it_keeps(iris, iris_model):
    """Found by a user: a PP was drawn as its changes from the instance (the features it
    removes, "25 → 37"), like a PN, and one that keeps nothing looked the same."""
    X, _ = iris
    cem = CEMExplainer(iris_model, mode="PP", **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = cem.explain(X[[0, 60, 120, 140]])
    kept = np.abs(exp.perturbation) > 1e-12
    i = int(np.argmax(exp.found & kept.any(axis=1)))
    assert exp.found[i] and kept[i].any()
    ax = plotting.plot_tabular_explanation(exp, index=i).axes[0]
    lower, upper = cem.feature_range_
    np.testing.assert_allclose([p.get_width() for p in ax.patches],
                               exp.perturbation[i] / (upper - lower))
    assert [t.get_text() for t in ax.texts] == [
        f" keeps {exp.explanation[i, j]:.4g}" for j in np.flatnonzero(kept[i])]
    assert "what it keeps" in ax.get_xlabel() and "keeps nothing" not in ax.get_title()
    empty = replace(exp, explanation=np.broadcast_to(exp.background, exp.X.shape).copy())
    ax = plotting.plot_tabular_explanation(empty, index=i).axes[0]
    assert "keeps nothing" in ax.get_title() and not ax.texts
    plt.close("all")


def test_a_change_that_is_a_small_share_of_a_wide_range_is_still_drawn():
    """Found by a review: an outlier widened x0's range to 1e15, so the change 40 → 500 was
    2e-13 of it, under the cut for "changed": no label, and a PP keeping it was titled
    "keeps nothing"."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 1000, 300), rng.uniform(0, 1, 300)])
    X[0, 0] = 1e15

    def proba(rows):
        p = 1 / (1 + np.exp(-np.clip((rows[:, 0] - 500) / 50, -50, 50)))
        return np.column_stack([1 - p, p])

    y = (X[:, 0] > 500).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a PN of class 0 moves x0 up past 500; a PP of class 1 keeps x0 above 500
        for mode, rows in (("PN", X[1:][y[1:] == 0][:2]), ("PP", X[1:][y[1:] == 1][:2])):
            cem = CEMExplainer(proba, mode=mode, no_info_val=0.0, search="neighbors")
            exp = cem.fit(X, y).explain(rows)
            i = int(np.argmax(exp.found))
            assert exp.found[i]
            listed = exp.changes()[i]
            assert listed
            ax = plotting.plot_tabular_explanation(exp, index=i).axes[0]
            assert len(ax.texts) == len(listed)
            assert "keeps nothing" not in ax.get_title()
    plt.close("all")


def test_long_labels_end_inside_their_panel_and_a_missing_cell_is_named():
    """Found by a user: a long category's label ran past the figure's edge, and in
    plot_counterfactuals into the next panel; a missing cell had no mark."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from skcem import CounterfactualExplainer

    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({
        "annual_income_in_dollars": rng.normal(50000, 20000, n).round(2),
        "occupation": rng.choice(["Executive managerial professional",
                                  "Handlers cleaners and helpers", "Other service"], n),
        "age": rng.integers(18, 80, n).astype(float)})
    X.loc[:20, "age"] = np.nan
    y = ((X["annual_income_in_dollars"] > 50000) ^ (X["occupation"] == "Other service"))
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["occupation"]),
                                                  remainder="passthrough"),
                          HistGradientBoostingClassifier(max_iter=30)).fit(X, y.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = CounterfactualExplainer(model, n_counterfactuals=2).fit(X).explain(X.iloc[:6])
    labelled = 0
    for index in range(6):
        for fig in (plotting.plot_tabular_explanation(exp, index=index),
                    plotting.plot_counterfactuals(exp, index=index)):
            renderer = fig.canvas.get_renderer()
            areas = [ax.get_window_extent(renderer) for ax in fig.axes]
            for ax, area in zip(fig.axes, areas):
                for text in ax.texts:
                    box = text.get_window_extent(renderer)
                    labelled += " → " in text.get_text()
                    assert area.x0 <= box.x0 and box.x1 <= area.x1 + 1, text.get_text()
                    assert not any(box.overlaps(other) for other in areas if other is not area)
            if index <= 20 and fig.axes[0].get_yticklabels():
                names = [label.get_text() for label in fig.axes[0].get_yticklabels()]
                assert "age" not in names  # missing for rows 0-20
            plt.close(fig)
    assert labelled >= 6
    fig = plotting.plot_tabular_explanation(exp, index=0)
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == \
        ["annual_income_in_dollars", "occupation", "age (missing)"]
    plt.close(fig)


def test_similarity_counts_and_tabular_axes_are_checked(iris, iris_model):
    X, y = iris
    explainer = GradientSimilarityExplainer(iris_model).fit(X[:40], y[:40])
    exp = explainer.explain(X[100:102])
    for kwargs, message in [({"n_most": -1}, "`n_most` must be a non-negative integer"),
                            ({"n_least": -2}, "`n_least` must be a non-negative integer"),
                            ({"n_most": 2.5}, "`n_most` must be a non-negative integer"),
                            ({"n_most": 0, "n_least": 0}, "both 0"),
                            ({"feature_names": "abcd"}, "`feature_names` must be a list")]:
        with pytest.raises(ValueError, match=message):
            plotting.plot_similarity(exp, explainer.X_train_, **kwargs)
    fig = plotting.plot_similarity(exp, explainer.X_train_, n_most=0, n_least=2)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[1:]] == ["least similar"] * 2
    plt.close("all")
    cf = CounterfactualExplainer(iris_model).fit(X).explain(X[:2])
    with pytest.raises(ValueError, match="`ax` must be one matplotlib Axes; got ndarray"):
        plotting.plot_tabular_explanation(cf, ax=plt.subplots(1, 2)[1])
    plt.close("all")


def test_a_strip_of_pixels_is_drawn_as_a_row(digit_pn):
    """Found by a user: image_shape=(1, 64) failed inside matplotlib (a 1-D image)."""
    for shape, drawn in (((1, 64), (1, 64)), ((64, 1), (64, 1))):
        fig = plotting.plot_image_explanation(digit_pn, image_shape=shape)
        assert fig.axes[0].images[0].get_array().shape == drawn
        plt.close(fig)


def test_an_instance_without_any_counterfactual_is_drawn_with_its_class(digits, digits_model):
    """Found by a user: an instance with no answer got a blank figure ("rank 0: none")."""
    X, _ = digits
    own = digits_model.predict(X[1300:1301])[0]
    explainer = CounterfactualExplainer(digits_model, target_class=own, n_counterfactuals=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = explainer.fit(X[:300]).explain(X[1300:1301])
    assert not exp.found[0]
    fig = plotting.plot_counterfactuals(exp, image_shape=(8, 8))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), X[1300].reshape(8, 8))
    assert fig.axes[2].get_title() == "no CF found"
    plt.close(fig)
    bars = plotting.plot_counterfactuals(exp)  # as a table
    assert f"class {own}" in bars.axes[0].get_title() and "no CF found" in \
        bars.axes[0].get_title()
    plt.close("all")


def test_a_regression_target_is_titled_at_the_scores_precision(iris):
    """Found by a new user: "test: target -15.916417605876937" beside scores of 3 digits."""
    from sklearn.linear_model import Ridge

    X, _ = iris
    y = X[:, 3] * np.pi
    explainer = GradientSimilarityExplainer(Ridge().fit(X, y), task="regression").fit(X, y)
    fig = plotting.plot_similarity(explainer.explain(X[:2], y[:2]), X, n_most=1)
    assert fig.axes[0].get_title() == f"test: target {y[0]:.4g}"
    plt.close(fig)
