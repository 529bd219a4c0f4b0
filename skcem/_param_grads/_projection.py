"""Seeded random projection of per-example gradients that never builds the full gradient.

A dense layer's gradient ``g = â ⊗ δ`` (see :mod:`._factors`) is projected as

    P(g) = (â Ω) ⊙ (δ Ψ) / sqrt(k),

with ``Ω`` (d_in, k) and ``Ψ`` (d_out, k) standard Gaussian: the outer product projected by the
Khatri-Rao matrix ``Ω ⊙ Ψ``, at the cost of projecting ``â`` and ``δ`` separately, with
``O((d_in + d_out) k)`` numbers stored instead of ``O(d_in d_out k)``. It is unbiased,
``E[P(g) · P(g')] = g · g'``, with variance

    ((|â|²|â'|² + 2(â·â')²) (|δ|²|δ'|² + 2(δ·δ')²) - (â·â')²(δ·δ')²) / k,

between ``(|g|²|g'|² + (g·g')²) / k`` (that of an unstructured Gaussian projection of ``g``) and
four times that (when ``g'`` is parallel to ``g``): the price of never building ``g``.

Sparse inputs (a text vectorizer's rows: 2**20 columns of hashed words) get Gaussian rows of
``Ω`` only at the columns the training rows hold, ``O(support * k)`` numbers, and a count
sketch at the others (a test row's words unseen in training meet only zeros of the training
rows in the exact scores; the sketch keeps them in the test row's projected norm).

The other parameters' gradients, kept flattened, are count-sketched: each parameter is added,
with a random sign, to one of ``k`` random components (a sparse matrix, ``O(n_params)`` memory).
Unbiased, with variance ``(|g|²|g'|² + (g·g')² - 2 Σ_p g_p² g'_p²) / k``.

The layers' projections are added, not concatenated: the result is one projection of the whole
gradient to ``k`` dimensions by a block-structured matrix, its variance of the same order as
that of one layer.
"""

import numpy as np
from scipy import sparse
from sklearn.utils import check_random_state


class GradientProjection:
    """Projects :class:`GradientFactors` to ``n_components`` dimensions.

    Parameters
    ----------
    template : GradientFactors
        Factors of any example, for the layers' sizes.
    n_components : int
    random_state : int, RandomState instance or None
    supports : list of (ndarray or None) or None, default=None
        Per dense layer whose inputs are sparse, the columns the training rows' inputs hold:
        ``Ω``'s rows are drawn for those alone (see the module's docstring); the template's
        own where not given.
    """

    def __init__(self, template, n_components, random_state=None, supports=None):
        rng = check_random_state(random_state)
        self.n_components = n_components
        supports = supports or [None] * len(template.dense)
        self.dense = [(_input_map(a, n_components, rng, support),
                       rng.standard_normal((d.shape[1], n_components)))
                      for (a, d), support in zip(template.dense, supports)]
        self.sketch = None
        if template.other is not None:
            n_other = template.other.shape[1]
            buckets = rng.randint(n_components, size=n_other)
            signs = rng.choice([-1.0, 1.0], size=n_other)
            self.sketch = sparse.csr_matrix((signs, (np.arange(n_other), buckets)),
                                            shape=(n_other, n_components))

    def __call__(self, factors):
        """Projected gradients: float32 ndarray of shape (len(factors), n_components).

        Single precision halves the memory of stored projections at no cost to the scores,
        whose relative error, ``O(1 / sqrt(n_components))``, is far above float32's.
        """
        out = np.zeros((len(factors), self.n_components))
        for (a, d), (omega, psi) in zip(factors.dense, self.dense):
            inputs = a @ omega
            out += (inputs.toarray() if sparse.issparse(inputs) else inputs) * (d @ psi)
        out /= np.sqrt(self.n_components)
        if self.sketch is not None:
            out += (self.sketch.T @ factors.other.T).T
        return out.astype(np.float32)


def _input_map(a, n_components, rng, support=None):
    """``Ω`` of a layer of inputs ``a``: Gaussian, (d_in, k); for sparse inputs, Gaussian rows
    at the columns ``support``, and at the others a count sketch (one random component, a
    random sign, times ``sqrt(k)``: the same expected squared norm, so a test row's words
    unseen in training still count in its norm, which ``grad_cos`` divides by), in a sparse
    matrix of ``O(support * k + d_in)`` numbers."""
    if not sparse.issparse(a):
        return rng.standard_normal((a.shape[1], n_components))
    support = np.unique(a.indices) if support is None else np.asarray(support)
    values = rng.standard_normal((len(support), n_components))
    others = np.setdiff1d(np.arange(a.shape[1]), support)
    buckets = rng.randint(n_components, size=others.size)
    signs = rng.choice([-1.0, 1.0], size=others.size) * np.sqrt(n_components)
    rows = np.concatenate([np.repeat(support, n_components), others])
    columns = np.concatenate([np.tile(np.arange(n_components), len(support)), buckets])
    return sparse.csr_matrix((np.concatenate([values.ravel(), signs]), (rows, columns)),
                             shape=(a.shape[1], n_components))
