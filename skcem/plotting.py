"""Pictures of explanations (matplotlib, an optional extra: ``pip install skcem[plot]``).

Every function draws on axes it is given or creates, and returns the matplotlib ``Figure``; it
never calls ``plt.show()``.
"""

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("skcem.plotting needs matplotlib: `pip install skcem[plot]`.") \
            from exc
    return plt


def _axes(axes, n, figsize):
    plt = _pyplot()
    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=figsize, squeeze=False)
        return fig, list(axes[0])
    axes = list(np.ravel(axes))
    if len(axes) != n:
        raise ValueError(f"`axes` must hold {n} axes; got {len(axes)}.")
    return axes[0].figure, axes


def _class_and_proba(classes, proba, label):
    """``"3 (0.97)"``: the model's class ``label`` (its ``predict``'s, which need not be the
    most probable: a threshold, an SVC) and its probability, the class alone where its
    probability is not known (the ranks after the first of several counterfactuals), or
    "none" without an answer."""
    if label is None:
        return "none"
    if proba is None or np.any(np.isnan(proba)):
        return f"{label}"
    positions = np.flatnonzero(np.asarray(classes) == label) if classes is not None else []
    position = int(positions[0]) if len(positions) else int(label)
    return f"{label} ({proba[position]:.2f})"


def _check_kind(explanation, function):
    """Refuse an explanation ``function`` cannot draw, in one line: a similarity explanation
    (with ``scores``) for ``plot_similarity`` only, the others for the other plots."""
    wants_scores = function == "plot_similarity"
    if hasattr(explanation, "scores") != wants_scores or not hasattr(explanation, "X"):
        takes = "GradientSimilarityExplainer.explain" if wants_scores else \
            "CEMExplainer.explain or CounterfactualExplainer.explain"
        raise TypeError(f"`explanation` is of type {type(explanation).__name__}: {function} "
                        f"takes the result of {takes}.")


def _check_index(index, n_instances):
    """``index`` as a position among ``n_instances``, or an error naming it."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or \
            not -n_instances <= index < n_instances:
        raise ValueError(f"`index` must be the position of an explained instance, 0 to "
                         f"{n_instances - 1}; got {index!r}.")
    return int(index)


def _check_count(value, name):
    """``value`` as a count of things to draw (0 or more), or an error naming it."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; got {value!r}.")
    return int(value)


def _checked_feature_names(feature_names, n_features):
    """``feature_names`` as a list when it names ``n_features`` features (or is None), else
    an error naming it."""
    if feature_names is None:
        return None
    if isinstance(feature_names, str):
        raise ValueError(f"`feature_names` must be a list of {n_features} names; got the "
                         f"string {feature_names!r}.")
    names = [str(name) for name in feature_names]
    if len(names) != n_features:
        raise ValueError(f"`feature_names` must name the {n_features} features; got "
                         f"{len(names)} names.")
    return names


def _checked_image_shape(image_shape, n_features):
    """``image_shape`` when it holds ``n_features`` values, else an error naming it."""
    if image_shape is not None and int(np.prod(image_shape)) != n_features:
        raise ValueError(f"`image_shape` {tuple(image_shape)} holds {int(np.prod(image_shape))} "
                         f"values, but the instances have {n_features} features.")
    return image_shape


def _image_shape(explanation, image_shape):
    shape = _checked_image_shape(image_shape, explanation.X.shape[1]) or explanation.input_shape
    if shape is None:
        side = int(round(np.sqrt(explanation.X.shape[1])))
        if side * side != explanation.X.shape[1]:
            raise ValueError("Pass `image_shape`: the instances are not square images.")
        shape = (side, side)
    return _drawn_shape(shape)


def _drawn_shape(shape):
    """An image's ``shape`` as drawn: its axes of length 1 dropped, a strip of pixels (1, n)
    or (n, 1) kept as the row or column it is; an error where it is no image."""
    given = tuple(shape)
    shape = tuple(dim for dim in shape if dim != 1) or (1,)
    if len(shape) == 1:
        shape = (1, shape[0]) if len(given) < 2 or given[-1] != 1 else (shape[0], 1)
    if len(shape) > 3 or (len(shape) == 3 and _colour_axis(shape) is None):
        raise ValueError(f"`image_shape` {shape} is no image: (height, width), or with 3 or 4 "
                         "colour channels first or last.")
    return shape


_CHANNELS = (3, 4)  # RGB, RGBA


def _colour_axis(shape):
    """The colour axis of a 3-D image shape: -1 (channels last, Keras's), 0 (channels first,
    PyTorch's) or None."""
    if shape[-1] in _CHANNELS:
        return -1
    return 0 if shape[0] in _CHANNELS else None


def _image(row, shape):
    """One row as an image for ``imshow``: (height, width), or (height, width, channels)
    where its shape holds colour channels (first or last)."""
    image = np.asarray(row, dtype=float).reshape(shape)
    if image.ndim == 3 and _colour_axis(shape) == 0:
        image = np.moveaxis(image, 0, -1)
    return image


def _show(ax, image, cmap, low, high):
    """``imshow`` of an image between ``low`` and ``high``; colour images, which matplotlib
    clips to [0, 1] whatever ``vmin`` and ``vmax``, rescaled to it first."""
    if image.ndim == 3:
        ax.imshow(np.clip((image - low) / max(high - low, 1e-12), 0.0, 1.0))
    else:
        ax.imshow(image, cmap=cmap, vmin=low, vmax=high)


def _show_change(ax, delta):
    """A signed change, red up and blue down; a colour image's summed over its channels."""
    if delta.ndim == 3:
        delta = delta.sum(axis=-1)
    limit = max(np.abs(delta).max(), 1e-12)
    ax.imshow(delta, cmap="RdBu_r", vmin=-limit, vmax=limit)


def plot_image_explanation(explanation, index=0, image_shape=None, axes=None, cmap="gray"):
    """Original, explanation (PN, PP or counterfactual) and their difference, side by side.

    Titles give each image's class and its probability: the original's is the class it was
    explained against (``X_pred``: the model's prediction, unless ``explain`` was given
    ``y``), the explanation's the model's prediction for it.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain`` on images.
    index : int, default=0
        The instance to draw.
    image_shape : tuple, optional
        Shape of one image; defaults to the explanation's ``input_shape`` or a square. Colour
        images hold 3 or 4 channels, last (Keras's layout) or first (PyTorch's): they are
        drawn in colour, scaled between the smallest and largest value of the original and
        the explanation, and their change summed over the channels.
    axes : array of 3 matplotlib Axes, optional
        Where to draw; default: a new figure.
    cmap : str, default="gray"
        Colour map of one-channel originals and explanations.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on.
    """
    _check_kind(explanation, "plot_image_explanation")
    index = _check_index(index, len(explanation.X))
    shape = _image_shape(explanation, image_shape)
    fig, axes = _axes(axes, 3, (9, 3.2))
    original = np.asarray(explanation.X, dtype=float)[index]  # a DataFrame's row too
    explained = np.asarray(explanation.explanation, dtype=float)[index]
    found = bool(explanation.found[index])
    low = np.nanmin([original.min(), np.nanmin(explained) if found else original.min()])
    high = np.nanmax([original.max(), np.nanmax(explained) if found else original.max()])
    classes = explanation.classes
    _show(axes[0], _image(original, shape), cmap, low, high)
    axes[0].set_title("original: " + _class_and_proba(classes, explanation.X_proba[index],
                                                       explanation.X_pred[index]))
    if found:
        _show(axes[1], _image(explained, shape), cmap, low, high)
        _show_change(axes[2], _image(explanation.delta[index], shape))
    label = _class_and_proba(classes, explanation.explanation_proba[index],
                             explanation.explanation_pred[index])
    axes[1].set_title(f"{explanation.mode}: {label}")
    change = "change, summed over the channels" if len(shape) == 3 else "change"
    axes[2].set_title(change if found else f"no {explanation.mode} found")
    for ax in axes:
        ax.set_axis_off()
    return fig


def plot_tabular_explanation(explanation, index=0, feature_names=None, ax=None,
                             only_changed=False):
    """A bar per feature: how the explanation changes the instance, and the class change.

    Every change is labelled "from → to" in the column's own values; its bar is its share
    of the feature's range (the explainer's ``feature_range_``), so that features of
    different scales compare (age 25 → 50 beside a capital gain of 0 → 5,122). A changed
    category is a hatched purple bar, half the widest numeric bar long. A PP's bars are
    what it keeps (its ``perturbation``: PP - background), labelled "keeps v"; a feature it
    removes has none, and a PP that keeps nothing says so in its title. A feature the
    constraints hold (``Explanation.held``: immutable, or kept from a PP's background by
    ``directions``) is labelled "(fixed)" in grey: held at the instance's value by
    construction, it is neither changed nor, for a PP, kept by the search. A feature missing
    in the instance (and so in the answer) is labelled "(missing)" in grey.

    Parameters
    ----------
    explanation : Explanation
        The result of ``explain``.
    index : int, default=0
        The instance to draw.
    feature_names : list of str, optional
        Defaults to the explanation's feature names, else ``x0, x1, ...``.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure.
    only_changed : bool, default=False
        Draw only the features that change.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on.
    """
    _check_kind(explanation, "plot_tabular_explanation")
    plt = _pyplot()
    index = _check_index(index, len(explanation.X))
    n_features = explanation.X.shape[1]
    names = _checked_feature_names(feature_names, n_features) or \
        [str(name) for name in explanation._names()]
    labels_text = _change_labels(explanation, index)
    widest = max((len(text) for text in labels_text.values()), default=0)
    found = explanation.found[index]
    if found:
        delta = _drawn_changes(explanation, index)
        # (changed as changes() says, by the raw values: a share of a wide range may be tiny)
        changed = ~np.isnan(delta) & (np.abs(delta) > 1e-12)
        keep = changed if only_changed else np.ones(n_features, dtype=bool)
    if ax is None:
        n_bars = max(int(keep.sum()), 1) if found else 1
        fig, ax = plt.subplots(figsize=(_panel_width(names, widest), 0.35 * n_bars + 1.2))
    elif not hasattr(ax, "barh") or not hasattr(ax, "figure"):
        raise ValueError(f"`ax` must be one matplotlib Axes; got {type(ax).__name__}.")
    else:
        fig = ax.figure
    before = _class_and_proba(explanation.classes, explanation.X_proba[index],
                              explanation.X_pred[index])
    if not found:
        ax.set_title(f"class {before}: no {explanation.mode} found")
        ax.set_axis_off()
        return fig
    categorical = explanation._numbers()[2]
    fixed = explanation.held[index]
    keeps = explanation.mode == "PP"
    positions = np.arange(int(keep.sum()))
    # A change as a share of its feature's range, where the explainer gave it: in raw
    # units, a change of years beside one of dollars would not show.
    shares = explanation.feature_range is not None
    if shares:
        lower, upper = (np.asarray(bound, dtype=float) for bound in explanation.feature_range)
        width = np.where(upper - lower > 0, upper - lower, 1.0)
        delta = delta / width
    # A changed category is drawn as a hatched bar labelled "from → to", half the widest
    # numeric change long (1 without one), since categories have no size.
    numeric = np.abs(delta[~categorical & ~np.isnan(delta)])  # missing cells stay missing
    unit = 0.5 * numeric.max() if numeric.size and numeric.max() > 0 else 1.0
    lengths = np.where(categorical, np.sign(delta) * unit, delta)[keep]
    colors = np.where(categorical[keep], "tab:purple",
                      np.where(lengths > 0, "tab:red", "tab:blue"))
    bars = ax.barh(positions, lengths, color=colors)
    missing = np.isnan(explanation._numbers()[0][index])  # missing in the answer too
    labels = [f"{n} (missing)" if m else f"{n} (fixed)" if f else n
              for n, f, m, k in zip(names, fixed, missing, keep) if k]
    for bar, j in zip(bars, np.flatnonzero(keep)):
        if not changed[j]:
            continue
        if categorical[j]:
            bar.set_hatch("//")
        # Every change labelled "from → to" in the column's own values: the bars share one
        # axis, where a change on a small scale beside one on a large scale (years beside
        # dollars, days beside fractions) would not show.
        # A label to the right: of a bar that grows right, past its end; of one that grows
        # left, from the zero line (to its left it would run into the features' names).
        # (out of the layout: _make_room_for_labels fits the axes' limits to them)
        ax.text(max(bar.get_width(), 0.0), bar.get_y() + bar.get_height() / 2,
                f" {labels_text[j]}", va="center", ha="left", fontsize="small",
                in_layout=False)
    ax.set_yticks(positions, labels)
    for label, is_fixed in zip(ax.get_yticklabels(), fixed[keep] | missing[keep]):
        if is_fixed:
            label.set_color("tab:gray")
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    # (on two lines for a PP: one is wider than a panel sized for its labels)
    ax.set_xlabel(("PP - background: what it keeps" if keeps else
                   f"{explanation.mode} - original")
                  + ((",\n" if keeps else ", ") + "share of the feature's range" if shares
                     else ""))
    # few ticks: a panel of several counterfactuals is narrow, and -10000 is a wide label
    ax.xaxis.set_major_locator(_pyplot().MaxNLocator(nbins=4))
    after = _class_and_proba(explanation.classes, explanation.explanation_proba[index],
                             explanation.explanation_pred[index])
    nothing = keeps and not changed.any()
    ax.set_title(f"{explanation.mode}: class {before} -> {after}"
                 + ("\n(keeps nothing: the background\nis of this class)" if nothing else ""))
    fig.tight_layout()
    _make_room_for_labels(ax, lengths)
    return fig


def _panel_width(names, widest):
    """Inches for a panel of bars: the features' names, the bars, the widest change label
    (``widest`` characters, in the labels' smaller font)."""
    return max(4.5, 0.08 * max(map(len, names), default=0) + 2.5 + 0.065 * (widest + 1))


def _make_room_for_labels(ax, lengths):
    """Set the x-limits of a panel of bars of ``lengths`` so that the change labels (its
    texts, each starting at a bar's end or at zero) end inside the axes, as measured drawn;
    at least a fifth of the axes stays for the bars."""
    if not lengths.size or not np.isfinite(lengths).any():
        return
    low = min(np.nanmin(lengths), 0.0)
    high = max(np.nanmax(lengths), 0.0)
    span = (high - low) or 1.0
    low -= 0.05 * span
    renderer = ax.figure.canvas.get_renderer()
    axes_width = ax.get_window_extent(renderer).width
    needed = high + 0.05 * span - low
    for text in ax.texts:
        text_width = text.get_window_extent(renderer).width
        # the text starts at (x - low) / (xmax - low) of the axes and must end by 98% of it
        free = max(0.98 * axes_width - text_width, 0.2 * axes_width)
        needed = max(needed, (text.get_position()[0] - low) * axes_width / free)
    ax.set_xlim(low, low + needed)


# Significant digits of a number of no known decimals in a label; characters of a category's
_DIGITS = 4
_LABEL_CHARACTERS = 28


def _drawn_changes(explanation, index):
    """What the bars of the instance ``index`` draw: a PP's perturbation (what it keeps of
    the instance, past the background; nothing where the constraints hold a feature), else
    the change from the instance (``delta``)."""
    if explanation.mode == "PP":
        return np.where(explanation.held[index], 0.0, explanation.perturbation[index])
    return explanation.delta[index]


def _change_labels(explanation, index):
    """``{feature: "from → to"}`` for the features the explanation changes at ``index``, in
    the columns' own values (and decimals, where known); for a PP, ``{feature: "keeps v"}``
    for those it keeps."""
    if not explanation.found[index]:
        return {}
    delta = explanation.delta[index]
    decimals = explanation.decimals if explanation.decimals is not None else \
        np.full(len(delta), -1)
    if explanation.mode == "PP":  # what it keeps: the instance's values, past the background
        kept = _drawn_changes(explanation, index)
        return {j: "keeps "
                   f"{_short(explanation._value(explanation.explanation, index, j), decimals[j])}"
                for j in np.flatnonzero(~np.isnan(kept) & (np.abs(kept) > 1e-12))}
    return {j: f"{_short(explanation._value(explanation.X, index, j), decimals[j])} → "
               f"{_short(explanation._value(explanation.explanation, index, j), decimals[j])}"
            for j in np.flatnonzero(~np.isnan(delta) & (np.abs(delta) > 1e-12))}


def _short(value, decimals=-1):
    """A cell for a label, as the table holds it: a number of a column of known
    ``decimals`` in those (an amount of 9,999.99), any other to 4 significant digits, in plain
    notation from 0.0001 to 1e15 (21,213, not 2.121e+04) without trailing zeros; thousands
    separated from 10,000 on, for integers and floats alike; a long category cut with an
    ellipsis."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not np.isfinite(value) or value == 0:
            return f"{value:g}"
        if decimals is not None and decimals >= 0:
            return f"{value:,.{decimals}f}" if abs(value) >= 10_000 else f"{value:.{decimals}f}"
        if not 1e-4 <= abs(value) < 1e15:
            return f"{value:.4g}"
        places = max(0, _DIGITS - int(np.floor(np.log10(abs(value)))) - 1)
        value = round(value, places)
        text = f"{value:,.{places}f}" if abs(value) >= 10_000 else f"{value:.{places}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if hasattr(value, "normalize") and hasattr(value, "date") and value == value.normalize():
        return value.date().isoformat()  # a day, without its midnight (a pandas Timestamp)
    text = str(value)
    return text if len(text) <= _LABEL_CHARACTERS else text[:_LABEL_CHARACTERS - 1] + "…"


def plot_counterfactuals(explanation, index=0, feature_names=None, axes=None,
                         only_changed=True, image_shape=None, cmap="gray"):
    """Every counterfactual of one instance (``n_counterfactuals`` > 1), closest first: a
    panel per answer, drawn as :func:`~skcem.plotting.plot_tabular_explanation` draws one;
    for images (``image_shape``, or a Keras or PyTorch model's input shape), a row per answer
    as :func:`~skcem.plotting.plot_image_explanation` draws one.

    Parameters
    ----------
    explanation : Explanation
        The result of :meth:`skcem.CounterfactualExplainer.explain`.
    index : int, default=0
        The instance to draw.
    feature_names : list of str, optional
        Defaults to the explanation's feature names, else ``x0, x1, ...``.
    axes : array-like of matplotlib Axes, optional
        One per counterfactual asked (``n_counterfactuals``); default: a new figure.
    only_changed : bool, default=True
        Draw only the features each answer changes.
    image_shape : tuple, optional
        Shape of one image, for images of a model that takes flat rows (digits); default:
        the explanation's ``input_shape``, and a table without one. ``axes`` then holds 3
        per answer (original, answer, change).
    cmap : str, default="gray"
        Colour map of one-channel images.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on.
    """
    _check_kind(explanation, "plot_counterfactuals")
    if explanation.counterfactual_distance is None:
        raise ValueError("`explanation` holds no counterfactuals: plot_counterfactuals takes "
                         "the result of CounterfactualExplainer.explain.")
    index = _check_index(index, len(explanation.X))
    distance = explanation.counterfactual_distance[index]
    k = distance.size
    ranked = explanation._ranked() if k > 1 else explanation
    if image_shape is not None or explanation.input_shape is not None:
        return _image_counterfactuals(explanation, ranked, index, k, image_shape, axes, cmap)
    n_bars = explanation.X.shape[1]
    labels = [_change_labels(ranked, index * k + rank) for rank in range(k)]
    if only_changed:  # the most any panel draws
        n_bars = max(map(len, labels), default=1) or 1
    names = _checked_feature_names(feature_names, explanation.X.shape[1]) or \
        [str(name) for name in explanation._names()]
    if only_changed:
        names = [names[j] for j in set().union(*labels)]
    widest = max((len(text) for panel in labels for text in panel.values()), default=0)
    fig, axes = _axes(axes, k, (_panel_width(names, widest) * k, 0.35 * n_bars + 1.5))
    before = _class_and_proba(explanation.classes, explanation.X_proba[index],
                              explanation.X_pred[index])
    for rank, ax in enumerate(axes):
        if not np.isfinite(distance[rank]):
            if rank == 0:  # no answer at all: the instance's class, and that none was found
                plot_tabular_explanation(ranked, index=index * k, feature_names=feature_names,
                                         ax=ax, only_changed=only_changed)
                continue
            ax.set_title(f"rank {rank}: none")
            ax.set_axis_off()
            continue
        plot_tabular_explanation(ranked, index=index * k + rank, feature_names=feature_names,
                                 ax=ax, only_changed=only_changed)
        reached = explanation.explanation_pred[index] if explanation.counterfactual_pred \
            is None else explanation.counterfactual_pred[index, rank]
        after = _class_and_proba(explanation.classes,
                                 ranked.explanation_proba[index * k + rank], reached)
        ax.set_title(f"rank {rank}: class {before} -> {after}"
                     f"\ndistance {distance[rank]:.3g}", fontsize="medium")
    fig.tight_layout()
    for ax, rank in zip(axes, range(k)):  # the panels' widths as laid out together
        if np.isfinite(distance[rank]):
            _make_room_for_labels(ax, np.array([bar.get_width() for bar in ax.patches]))
    return fig


def _image_counterfactuals(explanation, ranked, index, k, image_shape, axes, cmap):
    """``plot_counterfactuals`` of images: a row of original, answer and change per rank."""
    shape = _image_shape(explanation, image_shape)  # checked before any figure is made
    if axes is None:
        fig, grid = _pyplot().subplots(k, 3, figsize=(9, 3.2 * k), squeeze=False)
        axes = list(grid.ravel())
    else:
        fig, axes = _axes(axes, 3 * k, None)
    distance = explanation.counterfactual_distance[index]
    for rank in range(k):
        row = axes[3 * rank:3 * rank + 3]
        if not np.isfinite(distance[rank]):
            if rank == 0:  # no answer at all: the original, and that none was found
                plot_image_explanation(ranked, index=index * k, image_shape=shape, axes=row,
                                       cmap=cmap)
                continue
            for ax in row:
                ax.set_axis_off()
            row[1].set_title(f"rank {rank}: none")
            continue
        plot_image_explanation(ranked, index=index * k + rank, image_shape=shape, axes=row,
                               cmap=cmap)
        reached = explanation.explanation_pred[index] if explanation.counterfactual_pred \
            is None else explanation.counterfactual_pred[index, rank]
        row[1].set_title(f"rank {rank}: class {reached}\ndistance {distance[rank]:.3g}")
    fig.tight_layout()
    return fig


def plot_similarity(explanation, X_train, index=0, n_most=3, n_least=1, image_shape=None,
                    cmap="gray", feature_names=None, axes=None):
    """A test instance with its most and least similar training instances and their scores.

    Images are drawn as images (``image_shape``, or a square of more than 4 unnamed
    features); other rows as bar charts of their feature values.

    Parameters
    ----------
    explanation : SimilarityExplanation
        The result of :meth:`skcem.GradientSimilarityExplainer.explain`.
    X_train : array-like of shape (n_train, n_features)
        The training set the scores refer to, such as the explainer's ``X_train_``.
    index : int, default=0
        The test instance to draw.
    n_most : int, default=3
        Most similar training instances drawn.
    n_least : int, default=1
        Least similar training instances drawn (fewer where the training rows run out: none
        is drawn twice).
    image_shape : tuple, optional
        Shape of one image; default: a square of more than 4 unnamed features. Colour images
        (3 or 4 channels, last or first) are drawn in colour, all on one scale.
    cmap : str, default="gray"
        Colour map of images.
    feature_names : list of str, optional
        Labels of the bars; default: the columns of a DataFrame ``X_train``, else those of
        the DataFrame ``fit`` took (``explanation.feature_names``). Training rows are titled
        by their labels there (``explanation.train_labels``), as ``to_frame`` shows them.
    axes : array of ``1 + n_most + n_least`` matplotlib Axes, optional
        Where to draw: the test instance, then the training instances.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on.
    """
    _check_kind(explanation, "plot_similarity")
    if any(getattr(dtype, "kind", "f") not in "biuf"
           for dtype in getattr(explanation.X, "dtypes", ())):
        raise ValueError("plot_similarity draws rows of numbers (as bars or images); these "
                         "hold text or categories: read explanation.to_frame() and the rows "
                         "it names (most_similar, least_similar) instead.")
    if feature_names is None and hasattr(X_train, "columns"):
        feature_names = [str(c) for c in X_train.columns]
    if feature_names is None:  # an explainer's X_train_ of a DataFrame fit saw: its columns
        feature_names = getattr(explanation, "feature_names", None)
    feature_names = _checked_feature_names(feature_names, explanation.X.shape[1])
    index = _check_index(index, len(explanation.X))
    n_most, n_least = _check_count(n_most, "n_most"), _check_count(n_least, "n_least")
    if n_most + n_least == 0:
        raise ValueError("`n_most` and `n_least` are both 0: there is no training instance "
                         "to draw.")
    _checked_image_shape(image_shape, explanation.X.shape[1])
    n_train, n_features = np.shape(explanation.scores)[1], explanation.X.shape[1]
    if np.ndim(X_train) < 2 or len(X_train) != n_train or \
            int(np.prod(np.shape(X_train)[1:])) != n_features:
        raise ValueError(f"X_train must be the {n_train} training rows the scores refer to "
                         f"(the explainer's X_train_), of {n_features} features; got shape "
                         f"{np.shape(X_train)}.")
    order = explanation.ordered_indices[index]
    # no training row drawn twice where n_most + n_least exceeds them
    n_least = max(0, min(n_least, n_train - min(n_most, n_train)))
    picks = [("most", i) for i in order[:n_most]] + \
        [("least", i) for i in order[::-1][:n_least]]
    given = axes is not None
    height = 2.8 if feature_names is None else max(2.8, 0.22 * n_features + 1.2)
    fig, axes = _axes(axes, 1 + len(picks), (2.4 * (1 + len(picks)), height))
    X_train = np.asarray(X_train).reshape(n_train, n_features)
    rows = [explanation.X[index]] + [X_train[i] for _, i in picks]
    target = "target" if getattr(explanation, "target_given", True) else "predicted"
    shown = explanation.target[index]
    if isinstance(shown, (float, np.floating)) or (
            isinstance(shown, np.ndarray) and shown.dtype.kind == "f"):
        shown = np.array2string(np.asarray(shown), precision=3) if np.ndim(shown) else \
            f"{float(shown):.4g}"  # a regression target, at the scores' precision
    # training rows by their labels where fit's DataFrame had them (as to_frame shows them)
    labels = getattr(explanation, "train_labels", None)
    named = [f"#{i}" if labels is None else labels[i] for _, i in picks]
    titles = [f"test: {target} {shown}"] + [
        f"{kind} similar\n{name}: {explanation.scores[index, i]:.3g}"
        for (kind, i), name in zip(picks, named)]
    side = int(round(np.sqrt(n_features)))
    # A square number of unnamed features is taken for an image; named columns never are.
    shape = image_shape or ((side, side) if side * side == n_features and feature_names is None
                            and n_features > 4 else None)
    if image_shape is not None:
        shape = _drawn_shape(image_shape)
    if shape is not None:
        images = [_image(row, shape) for row in rows]
        low, high = min(image.min() for image in images), max(image.max() for image in images)
    for k, (ax, row, title) in enumerate(zip(axes, rows, titles)):
        if shape is not None:  # every image on one scale, as plot_image_explanation
            _show(ax, images[k], cmap, low, high) if len(shape) == 3 else \
                ax.imshow(images[k], cmap=cmap, vmin=low, vmax=high)
            ax.set_axis_off()
        else:  # a bar per feature, named on the first panel only
            ax.barh(np.arange(n_features), row)
            ax.invert_yaxis()
            ax.set_yticks(np.arange(n_features),
                          feature_names if feature_names is not None and k == 0 else [],
                          fontsize=7)
        ax.set_title(title, fontsize=9)
    if not given:
        fig.tight_layout()
    return fig
