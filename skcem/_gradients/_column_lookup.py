"""A Pipeline's ColumnTransformer answered from the search's coded rows, column by column.

A gradient-free search on a table asks a tree model about tens of thousands of rows, a few
hundred at a time: each call decodes its rows into a DataFrame and runs the Pipeline's
ColumnTransformer, whose per-call work (pandas indexing, its encoders' validation) cost
more than a 200-tree forest's own on UCI Adult (12 ms a call against 14). Where every step
of it works column by column (one-hot and ordinal encoders of categorical columns, scalers
and passthrough of numeric ones), its output is built from the coded rows instead: each
categorical column's block looked up by the category's code, from a table its own encoder
made at construction, and the numeric columns given to their own fitted scaler. The values
are the ColumnTransformer's own, bit for bit; the caller checks them on the data it was
fitted on (:meth:`ColumnLookup.agrees`).
"""

import warnings

import numpy as np

from .._warnings import catching_warnings
from ._base import ignoring_feature_name_warnings

# Numbers one column's table may hold (32 MiB): a one-hot block of 20,000 zip codes would
# want 3 GiB; such a column's rows go the Pipeline's way.
_MAX_TABLE_NUMBERS = 2**22
_SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
_ENCODERS = ("OneHotEncoder", "OrdinalEncoder")  # of categorical columns


class ColumnLookup:
    """``transform`` of a fitted ColumnTransformer, from rows of codes (see the module).

    Parameters
    ----------
    transformer : fitted ColumnTransformer
    codec : fitted TableCodec
        The explainer's: how its rows' columns code the table's.
    parts : list of tuple
        ``(kind, step, columns, output)`` per transformer: "lookup" (the tables of its
        columns' blocks), "scale" (a fitted scaler), "passthrough".
    """

    def __init__(self, transformer, codec, parts):
        self.transformer = transformer
        self.codec = codec
        self.parts = parts
        self.width = sum(output.stop - output.start for _, _, _, output in parts)

    @classmethod
    def of(cls, steps, codec):
        """The lookup of a Pipeline's steps before its model (``pipeline[:-1]``), where they
        are one ColumnTransformer of encoders, scalers and passthrough over a DataFrame's
        plain columns (no times, no nullable dtypes); else None."""
        from sklearn.compose import ColumnTransformer

        if codec is None or not codec.is_frame_ or len(steps) != 1 or \
                any(time is not None for time in codec.times_):
            return None
        transformer = steps[0] if not hasattr(steps, "steps") else steps.steps[0][1]
        # (weights scale a transformer's output block: not looked up)
        if type(transformer) is not ColumnTransformer or \
                not hasattr(transformer, "output_indices_") or transformer.transformer_weights:
            return None
        parts = []
        for name, step, _ in transformer.transformers_:
            output = transformer.output_indices_[name]
            columns = list(transformer._transformer_to_input_indices.get(name, []))
            if isinstance(step, str) and step == "drop" or output.stop == output.start:
                continue
            if not columns:
                return None
            categorical = codec.categorical_[columns]
            if categorical.all():  # each column's block, by its codes
                blocks = _blocks(step, columns, codec)
                if blocks is None:
                    return None
                parts.append(("lookup", blocks, columns, output))
                continue
            # (a float32 column is scaled in float32 by the ColumnTransformer)
            if categorical.any() or not all(
                    isinstance(codec.dtypes_[j], np.dtype) and (codec.dtypes_[j].kind in "biu"
                                                                or codec.dtypes_[j] == float)
                    for j in columns):
                return None
            if _is_identity(step):
                parts.append(("passthrough", None, columns, output))
            elif type(step).__name__ in _SCALERS and type(step).__module__.startswith("sklearn."):
                parts.append(("scale", step, columns, output))
            else:
                return None
        return cls(transformer, codec, parts)

    def __call__(self, Z):
        """The ColumnTransformer's output (dense, float64) for the coded rows ``Z``."""
        out = np.empty((len(Z), self.width))
        for kind, step, columns, output in self.parts:
            if kind == "passthrough":
                out[:, output] = Z[:, columns]
            elif kind == "scale":
                with ignoring_feature_name_warnings():
                    out[:, output] = step.transform(Z[:, columns])
            else:
                start = output.start
                for j, table in zip(columns, step):
                    # codes as decode reads them: the nearest, inside the column's
                    codes = np.clip(np.rint(Z[:, j]), 0, len(table) - 1).astype(np.intp)
                    out[:, start:start + table.shape[1]] = table[codes]
                    start += table.shape[1]
        return out

    def covering(self, row):
        """Rows like ``row`` that together hold every code of every categorical column (the
        first call's rows may leave a category, and a transformer's block, unseen)."""
        categorical = np.flatnonzero(self.codec.categorical_)
        sizes = [len(self.codec.categories_[j]) for j in categorical]
        rows = np.repeat(np.asarray(row, dtype=float)[None], max(sizes, default=0), axis=0)
        for j, size in zip(categorical, sizes):
            rows[:, j] = np.arange(len(rows)) % size
        return rows

    def agrees(self, Z, as_given=False):
        """Whether the lookup gives the ColumnTransformer's own output on the coded rows
        ``Z``, bit for bit (rows with missing values left out: they are never looked up);
        with ``as_given``, as a float64 array too, as the model after it gets it."""
        Z = Z[np.isfinite(Z).all(axis=1)]
        if not len(Z):
            return True
        own = self.transformer.transform(self.codec.decode(Z))
        if as_given and not (isinstance(own, np.ndarray) and own.dtype == np.float64):
            return False
        own = own.toarray() if hasattr(own, "toarray") else np.asarray(own, dtype=float)
        return own.shape == (len(Z), self.width) and np.array_equal(own, self(Z))


def _is_identity(step):
    """Whether a ColumnTransformer's ``step`` passes its columns through (the remainder's
    ``FunctionTransformer()`` included)."""
    from sklearn.preprocessing import FunctionTransformer

    return (isinstance(step, str) and step == "passthrough") or (
        type(step) is FunctionTransformer and step.func is None)


def _blocks(step, columns, codec):
    """Per categorical column of a fitted one-hot or ordinal encoder (or a passthrough of
    them), its output block for each code of the column (rows in code order), made by the
    step itself; None for other steps, where the step fails, or its blocks cannot be told
    apart."""
    name = type(step).__name__ if not isinstance(step, str) else step
    sklearn_step = isinstance(step, str) or type(step).__module__.startswith("sklearn.")
    if not sklearn_step or not (name in _ENCODERS or _is_identity(step)):
        return None
    widths = getattr(step, "_n_features_outs", None) if name == "OneHotEncoder" else \
        [1] * len(columns)
    if widths is None or len(widths) != len(columns):
        return None
    if _is_identity(step):
        def transform(frame):
            return frame.to_numpy(dtype=float)
    else:
        transform = step.transform
    base = np.zeros((1, len(codec.categorical_)))
    tables = []
    start = 0
    for j, width in zip(columns, widths):
        if len(codec.categories_[j]) * width > _MAX_TABLE_NUMBERS:
            return None
        rows = np.repeat(base, len(codec.categories_[j]), axis=0)
        rows[:, j] = np.arange(len(codec.categories_[j]))
        try:
            with catching_warnings():
                warnings.simplefilter("ignore")  # unknown categories, as the model's own calls
                block = transform(codec.decode(rows).iloc[:, columns])
        except (ValueError, TypeError):
            return None
        block = block.toarray() if hasattr(block, "toarray") else np.asarray(block, float)
        tables.append(np.ascontiguousarray(block[:, start:start + width], dtype=float))
        start += width
    if start != sum(widths):
        return None
    return tables
