"""Per-example gradients kept factorised: dense layers as (input, output gradient) pairs.

For a dense layer ``z = a @ W + b`` the gradient of one example's loss with respect to ``W`` is
the outer product ``a ⊗ δ`` of the layer's input ``a`` and the gradient ``δ = dL/dz``, and the
gradient with respect to ``b`` is ``δ``: with ``â = [a, 1]`` the layer's whole gradient is
``â ⊗ δ``. Dot products and norms then factorise,

    (â_i ⊗ δ_i) · (â_j ⊗ δ_j) = (â_i · â_j) (δ_i · δ_j),    ||â ⊗ δ||² = ||â||² ||δ||²,

so scores between ``n`` and ``m`` examples cost ``O(n m (d_in + d_out))`` per layer instead of
``O(n m d_in d_out)``, and the outer products are never built. The other parameters' gradients
are kept flattened; per-layer contributions add up.
"""

import itertools

import numpy as np
from scipy import sparse


def _float_rows(a):
    """A factor as float64 rows: a scipy sparse matrix stays sparse (CSR), as a text
    vectorizer's rows are (a vocabulary of 2**20 columns holds a few dozen per document)."""
    if sparse.issparse(a):
        return sparse.csr_matrix(a, dtype=float)
    return np.asarray(a, dtype=float)


def _row_sq_norms(a):
    if sparse.issparse(a):
        return np.asarray(a.multiply(a).sum(axis=1), dtype=float).ravel()
    return np.einsum("ij,ij->i", a, a)


class GradientFactors:
    """Per-example gradients of ``n`` examples, dense layers factorised.

    Parameters
    ----------
    dense : list of (ndarray of shape (n, d_in), ndarray of shape (n, d_out))
        Each dense layer's input (with a column of ones for its bias, if it has one) and the
        gradient of the loss with respect to its output before the activation.
    other : ndarray of shape (n, n_other) or None
        Flattened gradients of all other parameters (none when it has no column).
    matmul : callable or None, default=None
        ``(x, y) -> x @ y.T`` for the products in :meth:`dot`, a module-level function (the
        factors pickle with it); numpy's when None. Keras models use TensorFlow's, which
        shares TensorFlow's threads instead of competing with them for the cores.
    """

    def __init__(self, dense, other=None, matmul=None):
        self.dense = [(_float_rows(a), np.asarray(d, dtype=float)) for a, d in dense]
        # kept in their own precision: float32 from Keras, n_params floats per example
        self.other = None if other is None or other.shape[1] == 0 else np.asarray(other)
        self.matmul = matmul

    def __len__(self):
        if self.dense:
            return self.dense[0][0].shape[0]
        return 0 if self.other is None else len(self.other)

    def __getitem__(self, rows):
        return GradientFactors([(a[rows], d[rows]) for a, d in self.dense],
                               None if self.other is None else self.other[rows], self.matmul)

    @property
    def nbytes(self):
        def size(array):
            return array.data.nbytes + array.indices.nbytes + array.indptr.nbytes \
                if sparse.issparse(array) else array.nbytes

        return sum(size(a) + d.nbytes for a, d in self.dense) + \
            (0 if self.other is None else self.other.nbytes)

    @property
    def is_sparse(self):
        return any(sparse.issparse(a) for a, _ in self.dense)

    @classmethod
    def concatenate(cls, parts):
        """The factors of all the rows of ``parts``, in order."""
        first = parts[0]

        def stacked(arrays):
            return sparse.vstack(arrays, format="csr") if sparse.issparse(arrays[0]) \
                else np.vstack(arrays)

        dense = [(stacked([p.dense[k][0] for p in parts]),
                  np.vstack([p.dense[k][1] for p in parts])) for k in range(len(first.dense))]
        other = None if first.other is None else np.vstack([p.other for p in parts])
        return cls(dense, other, first.matmul)

    @property
    def layout(self):
        """The widths of the factors and of the other columns: two sets of factors of the
        same parameters have the same layout."""
        return ([(a.shape[1], d.shape[1]) for a, d in self.dense],
                0 if self.other is None else self.other.shape[1])

    def dot(self, other):
        """Gradient dot products: ndarray of shape (len(self), len(other))."""
        if self.layout != other.layout:
            raise RuntimeError(f"Gradients of two layouts cannot be compared ({self.layout} "
                               f"against {other.layout}): the model was factorised "
                               "differently on the two sides.")
        matmul = self.matmul or _matmul_t
        out = np.zeros((len(self), len(other)))
        for (a, d), (a2, d2) in zip(self.dense, other.dense):
            inputs = _sparse_matmul_t(a, a2) if sparse.issparse(a) or sparse.issparse(a2) \
                else matmul(a, a2)
            out += inputs * matmul(d, d2)
        if self.other is not None:
            out += matmul(self.other, other.other)
        return out

    def sq_norms(self):
        """Squared gradient norms: ndarray of shape (len(self),)."""
        out = np.zeros(len(self))
        for a, d in self.dense:
            out += _row_sq_norms(a) * np.einsum("ij,ij->i", d, d)
        if self.other is not None:
            out += np.einsum("ij,ij->i", self.other, self.other)
        return out

    def toarray(self):
        """The flattened gradients (dense layers first, each as ``â ⊗ δ`` row-major)."""
        parts = [(_dense(a)[:, :, None] * d[:, None, :]).reshape(len(d), -1)
                 for a, d in self.dense]
        if self.other is not None:
            parts.append(self.other)
        return np.hstack(parts)


def _matmul_t(x, y):
    return x @ y.T


def _sparse_matmul_t(x, y):
    """``x @ y.T`` of factors either of which is sparse, as an ndarray."""
    product = x @ y.T
    return product.toarray() if sparse.issparse(product) else np.asarray(product)


def _dense(a):
    return a.toarray() if sparse.issparse(a) else a


def gradient_dot(test, train):
    """Dot products between the rows of two gradient matrices or :class:`GradientFactors`."""
    if isinstance(test, GradientFactors):
        return test.dot(train)
    return (test @ train.T).astype(float, copy=False)


def gradient_sq_norms(grads):
    """Squared norms of the rows of a gradient matrix or :class:`GradientFactors`."""
    if isinstance(grads, GradientFactors):
        return grads.sq_norms()
    return np.einsum("ij,ij->i", grads, grads, dtype=float)


def _arrays(grads):
    """The arrays of a gradient matrix or :class:`GradientFactors`, in a fixed order."""
    if not isinstance(grads, GradientFactors):
        return [grads]
    return [array for pair in grads.dense for array in pair] + \
        ([] if grads.other is None else [grads.other])


def _empty_like(grads, n_rows):
    """Uninitialised gradients of ``n_rows`` rows, of the kind, shapes and dtypes of ``grads``."""
    def empty(array):
        return np.empty((n_rows,) + array.shape[1:], dtype=array.dtype)

    if not isinstance(grads, GradientFactors):
        return empty(grads)
    return GradientFactors([(empty(a), empty(d)) for a, d in grads.dense],
                           None if grads.other is None else empty(grads.other), grads.matmul)


def stack_gradients(parts, n_rows=None):
    """Rows of several gradient matrices, or of several :class:`GradientFactors`, in order.

    With ``n_rows``, the number of rows of all the ``parts`` (any iterable), they are written
    into arrays of that many rows as they come, which never holds them twice.
    """
    if n_rows is None:
        parts = list(parts)
        if isinstance(parts[0], GradientFactors):
            return GradientFactors.concatenate(parts)
        return np.vstack(parts)
    parts = iter(parts)
    first = next(parts)
    if isinstance(first, GradientFactors) and first.is_sparse:  # no rows to write into
        return GradientFactors.concatenate([first, *parts])
    out, start = None, 0
    for part in itertools.chain([first], parts):
        if out is None:
            out = _empty_like(part, n_rows)
        for target, source in zip(_arrays(out), _arrays(part)):
            target[start:start + len(source)] = source
        start += len(part)
    return out
