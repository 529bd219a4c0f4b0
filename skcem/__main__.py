"""Command line: ``python -m skcem`` (also installed as ``skcem``).

- ``skcem demo``: explain an MLP on scikit-learn's digits.
- ``skcem explain --model MODEL --data DATA.csv --mode PN --out OUT.json``: PN/PP (or, with
  ``--mode CF``, counterfactuals) of a saved model for each row of a CSV file.
- ``skcem similarity --model MODEL --train TRAIN.csv --target COLUMN --data DATA.csv -k 5
  --out OUT.csv``: the most similar training rows of each row.

CSV files have a header row; blank lines are skipped. Where the model was fitted on named
features, the columns are matched to them by name, in any order. ``--data -`` reads standard
input, ``--out -`` writes standard output (in ``--format``); messages go to stderr.

Exit codes: 0 on success, 2 for bad usage or input, with a one-line message on stderr; 130
when interrupted (Ctrl-C); 1 when the reader of ``--out -`` stops reading early.
"""

import argparse
import ast
import csv
import dataclasses
import io
import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from ._labels import is_missing

# Binary tables a CSV option may be handed, by their first bytes.
_BINARY_TABLES = ((b"PAR1", "Parquet"), (b"ARROW1", "Arrow (Feather)"),
                  (b"PK\x03\x04", "zip (an Excel workbook?)"), (b"\x89HDF", "HDF5"))


class InputError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


def _read_table(path, option):
    """The header and the rows of a CSV file (blank lines skipped), as text.

    Parameters
    ----------
    path : str or Path
    option : str
        The option that named the file, for the messages.

    Returns
    -------
    header : list of str
    rows : list of (int, list of str)
        The file line of each data row and its cells, one per column of the header.
    """
    if str(path) == "-":
        if option != "--data":
            raise InputError(f"{option}: '-' (standard input) is for --data only")
        raw = sys.stdin.buffer.read()
        path = "standard input"
    else:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{option}: no such file: {path}")
        raw = path.read_bytes()
    for magic, kind in _BINARY_TABLES:
        if raw.startswith(magic):
            raise InputError(f"{option}: {path} is a {kind} file; the command line reads CSV "
                             "text: save the table with DataFrame.to_csv, or explain it from "
                             "Python (skcem's explainers take the DataFrame itself)")
    try:
        # utf-8-sig: spreadsheet programs save a byte-order mark that would stick to the
        # first name
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"{option}: {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on "
                         f"line {line}): save it as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    # a blank line is skipped, as pandas skips it; a row of empty cells (",,," or, in a
    # one-column file, a quoted "") is a row of missing values, kept: the output's rows
    # count the file's
    rows = [(reader.line_num, row) for row in reader
            if len(row) > 1 or (row and (row[0] == "" or row[0].strip()))]
    if len(rows) < 2:
        raise InputError(f"{option}: {path} needs a header row and at least one data row")
    header = rows[0][1]
    if len(header) == 1 and any(mark in header[0] for mark in ";\t|"):
        mark = next(mark for mark in ";\t|" if mark in header[0])
        raise InputError(f"{option}: {path} has one column, named {header[0]!r}: it seems "
                         f"delimited by {mark!r}; skcem reads comma-separated files (save it "
                         "with commas, and decimal points)")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{option}: {path} has duplicate columns {duplicates}")
    # rows counted from 0, as the output's "row" counts them (lines from 1, as editors do)
    for r, (line, cells) in enumerate(rows[1:]):
        if len(cells) > len(header):
            raise InputError(f"{option}: {path} row {r} (line {line}) has {len(cells)} cells, "
                             f"but the header has {len(header)} columns")
        if len(cells) < len(header):
            raise InputError(f"{option}: {path} row {r} (line {line}) has {len(cells)} cells, "
                             f"but the header has {len(header)} columns (an empty cell, "
                             "a missing value, still needs its comma)")
    return header, rows[1:]


def _where(path, option, r, line, name):
    return f"{option}: {path} row {r} (line {line}), column {name!r}"


# Cells of a numeric column read as missing, besides an empty one: pandas' and R's marks.
# (In a text column "NA" may be a category, North America: it stays text there.)
_MISSING_MARKS = frozenset({"NA", "N/A", "n/a", "NULL", "null", "None", "<NA>", "#N/A"})


def _is_missing_number(cell):
    cell = cell.strip()
    return not cell or cell in _MISSING_MARKS


def _numbers(path, option, header, rows, columns):
    """The cells of ``columns`` (indices into ``header``) as an array of floats, NaN for an
    empty cell or a mark of a missing value ("NA", "null"...: the explainers take them where
    the model does)."""
    values = np.empty((len(rows), len(columns)))
    for r, (line, cells) in enumerate(rows):
        for j, column in enumerate(columns):
            cell = cells[column]
            try:
                values[r, j] = np.nan if _is_missing_number(cell) else float(cell)
            except ValueError:
                raise InputError(f"{_where(path, option, r, line, header[column])}: "
                                 f"not a number: {cell!r}") from None
    return values


def _read_mixed(path, option, drop=(), table=None, dates=(), whole_as_int=True, texts=()):
    """Read a CSV file whose columns hold numbers or text (categories), with a header row,
    without the columns named in ``drop`` (such as a label column); ``table``: the file's
    :func:`_read_table` when already read; ``texts``: columns read as text whatever they
    hold (those the model's encoders know as strings: zip codes "02139", grades "1").

    Returns the header and a DataFrame: a column of whole numbers as int64 (answers keep
    whole numbers there, as for a DataFrame given to the explainer), of other numbers as
    float64, of True and False as bool (as ``pandas.read_csv`` reads them), anything else as
    text. Without pandas, or with ``whole_as_int`` False when every
    column holds numbers, an array of float64 (:func:`_numbers`).
    """
    header, rows = table or _read_table(path, option)
    # A label column is often in --train only: columns absent from a file are not missed
    # there (the caller names one that is in no file).
    kept = [j for j, name in enumerate(header) if name not in drop]
    rows = [(line, [cells[j] for j in kept]) for line, cells in rows]
    header = [header[j] for j in kept]
    text = []
    for j, name in enumerate(header):
        cells = [cells[j] for _, cells in rows if not _is_missing_number(cells[j])]
        # Mostly text: a categorical column. A few non-numbers among numbers: typos, named
        # by _numbers below.
        if name in dates or name in texts or \
                sum(not _is_float(cell) for cell in cells) * 2 > len(cells):
            text.append(j)
    try:
        import pandas as pd
    except ImportError as exc:
        if not text:
            return header, _numbers(path, option, header, rows, range(len(header)))
        raise InputError(f"{option}: text columns {[header[j] for j in text]} need pandas "
                         "(pip install pandas)") from exc
    if not (text or whole_as_int):
        return header, _numbers(path, option, header, rows, range(len(header)))
    columns = {}
    for j, name in enumerate(header):
        written = [cells[j] for _, cells in rows]
        cells = [cell.strip() for cell in written]
        if name in dates:
            try:
                columns[name] = _iso_dates(pd, pd.Series(cells))
            except (TypeError, ValueError):
                r, cell = next(((r, cell) for r, cell in enumerate(cells)
                                if cell and not _is_iso_date(pd, cell)), (None, None))
                where = "" if r is None else f", such as {cell!r} (row {r}, line {rows[r][0]})"
                raise InputError(f"--dates: column {name!r} of {path} holds a value that is "
                                 f"not an ISO 8601 date or time{where}") from None
            continue
        present = [cell for cell in cells if cell]
        if j in text and name not in texts and present and \
                all(cell.lower() in _TRUTH for cell in present):
            # True / False, as pandas reads them (a model fitted on a bool column)
            columns[name] = pd.Series([_TRUTH[cell.lower()] if cell else None
                                       for cell in cells],
                                      dtype=bool if len(present) == len(cells) else "boolean")
            continue
        if j in text:
            # as written, spaces and all, as pandas.read_csv reads them: a model fitted on
            # " Private" (UCI Adult, read with its spaces) knows no "Private"
            columns[name] = pd.Series([raw if cell else None
                                       for raw, cell in zip(written, cells)], dtype="str")
            continue
        numbers = _numbers(path, option, header, rows, [j])[:, 0]
        # a column with missing values stays float (NaN), as pandas reads it
        whole = np.all(numbers == np.round(numbers)) and np.all(np.abs(numbers) < 2**53)
        columns[name] = numbers.astype(np.int64) if whole else numbers
    return header, pd.DataFrame(columns)


_TRUTH = {"true": True, "false": False}


def _parse_ordered(values, files, tables, dates, drop, model):
    """``--ordered COLUMN=LEVEL,LEVEL ...`` as {column: [level, ...]}, lowest first, each
    level as the files write it (spaces and all: UCI Adult's " Bachelors"), else as the
    model's encoders know it, else as given: the same categories for every file."""
    ordered = {}
    for value in values:
        name, _, levels = value.partition("=")
        levels = [level.strip() for level in levels.split(",")]
        if not name or not all(levels):
            raise InputError(f"--ordered: {value!r} is not COLUMN=LEVEL,LEVEL,... (its levels "
                             "lowest first, such as education=HS-grad,Bachelors,Masters)")
        if not any(name in header for header, _ in tables.values()):
            raise InputError(f"--ordered: no column {name!r} in {' or '.join(files)}")
        if name in dates:
            raise InputError(f"--ordered: column {name!r} is in --dates too; dates are "
                             "ordered already")
        if name in drop:
            raise InputError(f"--ordered: column {name!r} is in --drop too")
        if len(set(levels)) < len(levels):
            raise InputError(f"--ordered: column {name!r} names a level twice")
        cells = [cells[header.index(name)] for header, rows in tables.values()
                 if name in header for _, cells in rows]
        present = [cell for cell in cells if cell.strip()]
        if present and all(_is_float(cell) for cell in present):
            raise InputError(f"--ordered: column {name!r} holds numbers, which are ordered "
                             "already: give its direction alone")
        spellings = {}
        for cell in dict.fromkeys(present):
            spellings.setdefault(cell.strip(), []).append(cell)
        twice = {level: written for level, written in spellings.items() if len(written) > 1}
        if twice:
            level, written = next(iter(twice.items()))
            raise InputError(f"--ordered: column {name!r} writes {level!r} in several ways "
                             f"({', '.join(map(repr, written))}), which a model takes for "
                             "different categories: write it one way")
        known = _known_categories(model, name)
        ordered[name] = [spellings[level][0] if level in spellings else known.get(level, level)
                         for level in levels]
    return ordered


def _categories_by_name(model):
    """The categories the model's encoders know, by the name of their column."""
    from ._tabular import model_categories

    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return {}
    names = [str(n) for n in names]
    return {names[j]: values
            for j, values in model_categories(model, names, len(names)).items()}


def _known_categories(model, name):
    """The text categories the model's encoders know in column ``name``, by their stripped
    spelling: {"Doctorate": " Doctorate"}."""
    values = _categories_by_name(model).get(name) or []
    return {value.strip(): value for value in values if isinstance(value, str)}


def _as_ordered(header, table, ordered, path):
    """The columns of ``ordered`` in ``table`` (from :func:`_read_mixed`) as pandas ordered
    categories, each level as the file writes it (spaces and all: " Bachelors")."""
    if not ordered:
        return header, table
    import pandas as pd

    for name, levels in ordered.items():
        if name not in header:
            continue
        column = table[name]
        strange = sorted(set(column.dropna()) - set(levels))
        if strange:
            raise InputError(f"--ordered: column {name!r} of {path} holds {strange[0]!r}, "
                             f"which is not among its levels {[lv.strip() for lv in levels]}")
        table[name] = pd.Categorical(column, categories=levels, ordered=True)
    return header, table


def _text_columns(model, header):
    """The columns that the model's encoders know as text (``categories_`` of strings), by
    name: read as text, "02139" stays "02139"."""
    return {name for name, values in _categories_by_name(model).items()
            if values and all(isinstance(v, str) for v in values if v is not None)}


def _is_float(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _refuse_text(path, option, header, rows, columns):
    """The similarity of parameter gradients needs numbers: a column of mostly text (a
    category) gets one line saying so, rather than its first cell's error."""
    for j in columns:
        cells = [cells[j] for _, cells in rows]
        if sum(not _is_float(cell) for cell in cells) * 2 > len(cells):
            raise InputError(f"{option}: column {header[j]!r} of {path} holds text; similarity "
                             "compares the model's parameter gradients, which need numbers: "
                             "save a Pipeline that encodes the column and ends in the model "
                             "(it takes the columns as they are), or encode them")


def _takes_tables(model):
    """Whether ``similarity`` hands the model's Pipeline the CSV's columns as they are (text
    too): its steps encode them, and its last step's parameters are compared."""
    from sklearn.pipeline import Pipeline

    from ._wrappers import frozen_inner

    return isinstance(frozen_inner(model), Pipeline)


def _first_step_reads_documents(model):
    """Whether the model is a Pipeline whose first step is a text vectorizer (1-D
    documents in, as ``TfidfVectorizer``, ``CountVectorizer``, ``HashingVectorizer``)."""
    from sklearn.pipeline import Pipeline

    from ._wrappers import frozen_inner

    pipeline = frozen_inner(model)
    return isinstance(pipeline, Pipeline) and hasattr(pipeline.steps[0][1], "build_analyzer")


def _as_documents(model, header, X, option):
    """The one column of a CSV for a Pipeline that reads documents, as they are."""
    if not _first_step_reads_documents(model) or not hasattr(X, "columns"):
        return X
    if len(header) != 1:
        raise InputError(f"{option}: the model's Pipeline reads one document per row (its "
                         f"first step is a text vectorizer): give one column besides the "
                         f"target, or --drop the others; got {len(header)}: {list(header)}")
    # an empty cell is an empty document (a CSV cannot tell "" from a missing one)
    return X.iloc[:, 0].fillna("")


def _reading_the_column_as_documents(model, header):
    """A Pipeline that reads documents, handed the one column of the CSV as them (what the
    explainers' error advises from Python), else the model as it is."""
    if not _first_step_reads_documents(model):
        return model
    if len(header) != 1:
        raise InputError(f"--data: the model's Pipeline reads one document per row (its first "
                         f"step is a text vectorizer): give one column, or --drop the others; "
                         f"got {len(header)}: {list(header)}")
    from functools import partial

    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from ._wrappers import column_documents

    return make_pipeline(FunctionTransformer(partial(column_documents, column=header[0])),
                         FrozenEstimator(model))


def _read_features(path, option, header, rows, target, model, drop=()):
    """The header and features of a CSV file for ``similarity``, without the ``target``
    column and those of ``drop``: a DataFrame of numbers and text for a Pipeline, else
    numbers only."""
    columns = [j for j in range(len(header)) if header[j] != target and header[j] not in drop]
    if _takes_tables(model):
        return _read_mixed(path, option, drop=(target, *drop), table=(header, rows),
                           texts=_text_columns(model, header))
    _refuse_text(path, option, header, rows, columns)
    return [header[j] for j in columns], _numbers(path, option, header, rows, columns)


def _read_train(args, model):
    """The feature names, features and targets of ``--train`` for ``similarity``."""
    header, rows = _read_table(args.train, "--train")
    if args.target not in header:
        raise InputError(f"--target: no column {args.target!r} in {args.train}")
    features, X = _read_features(args.train, "--train", header, rows, args.target, model,
                                 args.drop)
    return features, X, \
        _targets(args.train, "--train", header, rows, header.index(args.target), model)


def _targets(path, option, header, rows, column, model):
    """The cells of ``column`` as the model's classes, in their dtype, or as numbers for a
    model without ``classes_`` (a regressor, a deep classifier's class indices)."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return _numbers(path, option, header, rows, [column])[:, 0]
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        numbers = _numbers(path, option, header, rows, [column])[:, 0]
        with np.errstate(invalid="ignore"):
            y = numbers.astype(classes.dtype)
        known = (y == numbers) & np.isin(y, classes)
    else:
        # compared before the cast, which would cut labels longer than the classes' width
        labels = np.array([cells[column] for _, cells in rows])
        known = np.isin(labels, classes)
        y = labels.astype(classes.dtype)
    if not known.all():
        r = int(np.argmin(known))
        shown = [_plain(c) for c in classes[:10]] + (["..."] if len(classes) > 10 else [])
        raise InputError(f"--target: {rows[r][1][column]!r} in {path} row {r} "
                         f"(line {rows[r][0]}) is not one of the model's classes {shown}")
    return y


def _load_model(path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"--model: no such file: {path}")
    if path.suffix == ".keras":
        import zipfile

        if not zipfile.is_zipfile(path):
            raise InputError(f"--model: {path} is not a .keras archive (the zip file that "
                             "model.save writes)")
        try:
            import keras
        except ImportError as exc:
            raise InputError("--model: a .keras model needs TensorFlow: "
                             "pip install skcem[tf]") from exc
        try:
            return keras.models.load_model(path)
        except Exception as exc:  # any reading failure is bad input here
            first = (str(exc).splitlines() or [""])[0]
            raise InputError(f"--model: cannot load {path} as a Keras model "
                             f"({type(exc).__name__}: {first})") from exc
    import joblib

    try:
        model = joblib.load(path)
    except Exception as exc:  # any unpickling failure is bad input here
        raise InputError(f"--model: cannot load {path} ({type(exc).__name__}: {exc}); it "
                         "takes a fitted model saved with joblib.dump (a PyTorch module "
                         "too) or a .keras file") from exc
    from ._base import ExplainerMixin
    from ._validation import is_prefitted

    if isinstance(model, ExplainerMixin):
        explains = getattr(model, "estimator_", getattr(model, "estimator", None))
        raise InputError(f"--model: {path} holds a {type(model).__name__}, an explainer; "
                         "--model takes the model it explains (a "
                         f"{type(explains).__name__} here: save its estimator_ with "
                         "joblib.dump), and the command line fits the explainer itself")
    if not (callable(model) or hasattr(model, "predict") or hasattr(model, "predict_proba")):
        raise InputError(f"--model: {path} holds a {type(model).__name__}, not a model: it "
                         "takes a fitted classifier saved with joblib.dump (a PyTorch module "
                         "too) or a .keras file")
    if not is_prefitted(model):
        raise InputError(f"--model: {path} holds an unfitted {type(model).__name__}; the "
                         "command line explains a fitted model: fit it, then save it "
                         "(joblib.dump)")
    return model


class _Warnings:
    """Records the warnings of a block; :meth:`show` prints skcem's to stderr, one line each.

    The noise of matching a CSV's columns to the model's (feature names) is left out.
    """

    _NOISE = ("X has feature names, but the fitted", "X does not have valid feature names")

    def __init__(self, command, quiet, explainer=None):
        self.command, self.quiet, self.explainer = command, quiet, explainer
        self._context = warnings.catch_warnings(record=True)

    def __enter__(self):
        self.records = self._context.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._context.__exit__(*exc)
        return False

    def show(self):
        if self.quiet:
            return
        shown = set()
        for record in self.records:
            message = str(record.message).strip()
            if not issubclass(record.category, UserWarning) or message in shown or \
                    message.startswith(self._NOISE):
                continue
            shown.add(message)
            message = _in_flags(" ".join(message.split()), self.explainer)
            print(f"skcem {self.command}: warning: {message}", file=sys.stderr)


def _check_params(params, explainer, options):
    """Refuse ``--params`` that another option sets (``options``: name -> option) or that
    ``explainer`` (a class) does not have."""
    for key, option in options.items():
        if key in params:
            raise InputError(f"--params: set {key} with {option}, not --params")
    valid = explainer().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"--params: unknown {explainer.__name__} parameters {unknown}; valid "
                         f"ones are {sorted(k for k in valid if k not in options)}")


def _parse_params(items):
    params = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--params: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        if key in params:  # the last would silently win, dropping a constraint
            raise InputError(f"--params: {key} given twice; give it once (several columns "
                             f"in one value: {key}=a,b or {key}=a:...,b:...)")
        params[key] = _literal(value)
        if isinstance(params[key], str) and key in _DICT_PARAMS and ":" in value:
            params[key] = _mapping(value, key)  # age:increase,hours:decrease
            continue
        if isinstance(params[key], str) and ("," in value or (
                key in _LIST_PARAMS and value not in _LIST_PARAMS[key])):  # a plain list: a,b,c
            params[key] = [_literal(part.strip()) for part in value.split(",")]
        elif key in _LIST_PARAMS and isinstance(params[key], int) and \
                not isinstance(params[key], bool):  # one position: a list of one
            params[key] = [params[key]]
    return params


# Parameters that take a list of columns, and the strings they take as they are: one name
# given alone is a list of one.
_LIST_PARAMS = {"immutable_features": (), "categorical_features": ("auto",)}
# Parameters that take a dict by column, also given as name:value pairs (a range's two
# ends: name:low:high).
_DICT_PARAMS = ("directions", "feature_range", "feature_weights", "no_info_val")


def _mapping(value, key):
    """``"age:increase,hours:20:60"`` as ``{"age": "increase", "hours": (20, 60)}``; a
    column named twice is an error (the last would silently win, dropping a constraint)."""
    mapping = {}
    for pair in value.split(","):
        name, *values = [part.strip() for part in pair.split(":")]
        if name in mapping:
            raise InputError(f"--params: {key} names column {name!r} twice; give each "
                             "column once")
        values = [_literal(v) for v in values]
        mapping[name] = values[0] if len(values) == 1 else tuple(values)
    return mapping


def _verbosity(args):
    """The explainers' ``verbose``: a progress bar only on a terminal (in a log or a pipe its
    redrawn lines would pile up)."""
    return 0 if args.quiet or not sys.stderr.isatty() else 1


def _as_model_labels(value, model):
    """``--params`` labels read as numbers (``target_class=2``) where the model's classes are
    their text (``'2'``): the model's own labels."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return value
    known = {str(c): c for c in np.asarray(classes).tolist()}

    def label(v):
        return known.get(str(v), v) if v not in known.values() else v

    return [label(v) for v in value] if isinstance(value, list) else label(value)


def _literal(value):
    """A Python literal (number, list, None...), else the text itself."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _some(names, shown=10):
    """A list of names for a message: the first ``shown`` and how many in all."""
    listed = ", ".join(repr(name) for name in names[:shown])
    return f"[{listed}]" if len(names) <= shown else f"[{listed}, ... ({len(names)} in all)]"


def _reorder(header, values, expected, option):
    """``values`` with its columns named ``header`` put in the order of ``expected``."""
    if header == expected:
        return values
    missing = [name for name in expected if name not in header]
    extra = [name for name in header if name not in expected]
    if missing and sorted(name.strip() for name in header) == \
            sorted(name.strip() for name in expected):
        spaced = [name for name in (*extra, *missing) if name != name.strip()]
        raise InputError(f"{option}: the names differ by spaces around them "
                         f"({_some(spaced)}): write them without, in every file")
    if missing or extra:
        problems = ([f"missing columns {_some(missing)}"] if missing else []) + \
            ([f"unexpected columns {_some(extra)} (not features of the model"] if extra else [])
        if extra and len(extra) < len(header):  # a label, say: --drop leaves the features
            named = " ".join(name if name else "''" for name in extra)
            unnamed = " (the unnamed one: an index written by to_csv, which index=False "\
                "leaves out)" if "" in extra else ""
            problems[-1] += f", such as a label: leave them out with --drop {named}{unnamed})"
        elif extra:
            problems[-1] += ": none of the file's columns is one; is it the model's data?)"
        raise InputError(f"{option}: " + ", ".join(problems))
    return values[:, [header.index(name) for name in expected]]


def _model_columns(model, header, values, option):
    """The header and values of a CSV file in the model's column order, checked against it.

    Columns go by name where the model was fitted on named features, else by position.
    """
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(name) for name in names]
        if hasattr(values, "columns"):
            _reorder(header, np.empty((0, len(header))), names, option)  # checks the names
            return names, values[names]
        return names, _reorder(header, values, names, option)
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and n_features != len(header):
        raise InputError(f"{option}: {len(header)} columns, but the model expects "
                         f"{n_features} features")
    _check_keras_width(model, header, option)
    return header, values


def _check_keras_width(model, header, option):
    """Check the number of columns against a Keras model's input shape, where it has one."""
    from ._gradients import is_keras_model

    shape = getattr(model, "input_shape", None) if is_keras_model(model) else None
    if not isinstance(shape, tuple) or any(dim is None for dim in shape[1:]):
        return
    size = int(np.prod(shape[1:]))
    if size != len(header):
        raise InputError(f"{option}: {len(header)} columns, but the Keras model's input shape "
                         f"{tuple(shape[1:])} takes {size} values per row")


def _check_out(out, args):
    """Check that ``--out`` can be written, before any work is done, and is none of the
    files read (``--data``, ``--train``, ``--model``): they would be overwritten."""
    if out == "-":  # standard output, in --format
        return
    if getattr(args, "format", "json") != "json" and \
            Path(out).suffix.lower() != f".{args.format}":
        raise InputError(f"--format {args.format}: it is for --out - (standard output); a file's "
                         f"suffix says its format ({Path(out).name})")
    out = Path(out)
    if out.suffix.lower() not in (".json", ".csv"):
        raise InputError(f"--out: use a .json or .csv file, or - (standard output), not "
                         f"{out.name}")
    for option in ("data", "train", "model"):
        given = getattr(args, option, None)
        if given is not None and Path(given).resolve() == out.resolve():
            raise InputError(f"--out: {out} is the --{option} file, which it would overwrite: "
                             "write the results to another file")
    existed = out.exists()
    try:
        open(out, "a").close()
    except OSError as exc:
        raise InputError(f"--out: cannot write {out}: {exc.strerror}") from exc
    if not existed:
        out.unlink()


def _check_demo(args):
    """``demo``'s options, before any work is done."""
    if args.n_instances < 1:
        raise InputError(f"-n: the test digits to explain, at least 1; got {args.n_instances}")
    figure = Path(args.figure)
    if figure.name in ("", ".", "..") or figure.is_dir():
        raise InputError(f"--figure: {args.figure} is a folder; name the image file to write, "
                         "such as skcem_demo.png")
    if not figure.suffix:  # as matplotlib writes it
        figure = figure.with_name(figure.name + ".png")
    folder = figure.parent
    if not folder.is_dir():
        raise InputError(f"--figure: no folder {folder} to write {figure.name} in")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--figure: the folder {folder} cannot be written to")
    try:
        from matplotlib.figure import Figure
    except ImportError:  # the demo says there is no figure
        pass
    else:
        formats = Figure().canvas.get_supported_filetypes()
        if figure.suffix[1:].lower() not in formats:
            raise InputError(f"--figure: matplotlib writes no {figure.suffix} files; give "
                             f"one of {', '.join('.' + name for name in sorted(formats))}")
    args.figure = str(figure)


def _json_value(value):
    """A time of a date column (``--dates``) in ISO 8601, for ``json``."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _category_dtype_hint(model, data):
    """For an XGBoost or LightGBM model given text columns: a hint that a CSV's text is not a
    pandas ``category`` column, which such a model may have been trained on."""
    steps = getattr(model, "steps", None)
    last = steps[-1][1] if steps else model
    library = type(last).__module__.split(".")[0]
    if library not in ("xgboost", "lightgbm") or not hasattr(data, "columns") or \
            all(dtype.kind in "biufmM" for dtype in data.dtypes):
        return ""
    return (f" ({library} models trained on pandas category columns take no text: save a "
            "Pipeline that encodes the categories, such as an OrdinalEncoder before the model, "
            "or explain it from Python with the columns' category dtypes)")


# an explainer's words for its parameters that have options of their own here
_FLAGS = {"`estimator`": "--model", "task='regression'": "--task regression",
          "task='classification'": "--task classification",
          "`feature_range_`": "the feature range (the --train rows' range, or --params "
                              "feature_range=...)",
          "searched (X's rows": "searched (--data rows",
          "their rows are NaN (see `found`)": "their found is false",
          "give the column an ordered category dtype (`pd.CategoricalDtype(categories, "
          "ordered=True)`)": "give its levels, lowest first, with --ordered "
                             "COLUMN=LEVEL,LEVEL"}


# the explainers' parameters that the commands set by options of their own
_OPTIONS = {"mode": "--mode", "sim_fn": "--sim-fn", "task": "--task",
            "n_counterfactuals": "--n-counterfactuals"}
# a parameter set in Python's words: search='fista', c_init=100, clip=(-1000, 1000)
_SETTING = re.compile(r"(?<![\w.-])([A-Za-z][A-Za-z0-9_]*)="
                      r"('[^']*'|\"[^\"]*\"|\([^()]*\)|[\w.+-]+)")


def _in_a_call(text):
    """Whether the end of ``text`` lies inside a call's parentheses, ``Name(...``."""
    depth = 0
    for at in range(len(text) - 1, -1, -1):
        if text[at] == ")":
            depth += 1
        elif text[at] == "(":
            if depth == 0:
                return at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_")
            depth -= 1
    return False


def _in_flags(message, explainer=None):
    """An explainer's error or warning in the command line's words: its options, and its
    parameters as ``--params`` (``search='fista'``: ``--params search=fista``)."""
    for parameter, flag in _FLAGS.items():
        message = message.replace(parameter, flag)
    if explainer is None:
        return message
    names = set(explainer._get_param_names())

    def as_params(match):
        name, value = match.groups()
        before = message[:match.start()]
        # not a model's own setting, inside its repr's parentheses (SGDRegressor(loss=...)),
        # nor text inside quotes (a column named "device=mobile")
        inside = _in_a_call(before) or before.count("'") % 2 or before.count('"') % 2 \
            or before.count("`") % 2
        if name not in names or inside:
            return match.group(0)
        value = value.strip(chr(39) + chr(34))
        if value.startswith("("):  # a tuple: the command line's comma-separated values
            value = value[1:-1].replace(" ", "")
        if name in _OPTIONS:  # a parameter with an option of its own
            return f"{_OPTIONS[name]} {value}"
        return f"--params {name}={value}"

    return _SETTING.sub(as_params, message)


def _input_shape_hint(exc):
    """How to give ``input_shape`` here, where the error asks for it."""
    if "`input_shape`" not in str(exc).splitlines()[0]:
        return ""
    return " (on the command line: --params input_shape=1,28,28)"


def _missing_rows_hint(exc, tables):
    """For an error on missing values: the rows of each file that hold them (counted from 0,
    as the output's "row"), which a model that takes none cannot be asked about."""
    if "contains NaN" not in str(exc):
        return ""
    # the columns the model refuses: the others' missing cells, which it takes (an imputer
    # on them), are no matter
    cause = exc
    while cause is not None and not hasattr(cause, "missing_columns"):
        cause = cause.__cause__ or cause.__context__
    named = {str(c) for c in getattr(cause, "missing_columns", ())}
    found = []
    for option, values in tables.items():
        if hasattr(values, "isna"):
            columns = [c for c in values.columns if str(c) in named] or list(values.columns)
            holes = np.flatnonzero(values[columns].isna().to_numpy().any(axis=1))
        else:
            holes = np.flatnonzero(np.isnan(np.asarray(values, dtype=float)).any(axis=1))
        if holes.size:
            more = f" ({holes.size} in all)" if holes.size > 5 else ""
            found.append(f"{option} rows {holes[:5].tolist()}{more}")
        if option == "--data" and "--train" in tables and tables["--train"] is values:
            break
    return f" (missing cells in {', '.join(found)})" if found else ""


def _dates_hint(data, dates):
    """Where text columns hold ISO dates and are not ``--dates``: a hint, for a model that
    reads them as dates (a CSV's dates are text)."""
    if not hasattr(data, "columns"):
        return ""
    import pandas as pd

    looking = []
    for name in data.columns:
        column = data[name]
        if name in dates or pd.api.types.is_numeric_dtype(column.dtype) or \
                pd.api.types.is_datetime64_any_dtype(column.dtype):
            continue
        try:
            _iso_dates(pd, column)
        except (TypeError, ValueError):
            continue
        looking.append(name)
    if not looking:
        return ""
    return (f" (columns {looking} hold dates, read as text: for a model that takes dates, "
            f"give --dates {' '.join(map(str, looking))})")


def _missing_as_none(value):
    """``value`` with every float NaN (a missing cell) as None, in lists and dicts too: JSON
    has no NaN (``json.dumps`` writes a bare ``NaN`` that strict parsers refuse), a CSV
    cell of None is empty."""
    if isinstance(value, dict):
        return {k: _missing_as_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_missing_as_none(v) for v in value]
    if is_missing(value):  # NaN, pandas's NA and NaT too
        return None
    return value


def _write(rows, out, output_format="json"):
    """``rows`` to the file ``out`` (its suffix says JSON or CSV), or to standard output
    (``out`` "-") in ``output_format``."""
    rows = _missing_as_none(rows)
    if out == "-":
        _write_rows(rows, sys.stdout, output_format)
        sys.stdout.flush()
        return
    out = Path(out)
    text = io.StringIO(newline="")  # all written first: a failure leaves the file as it was
    _write_rows(rows, text, out.suffix.lower()[1:])
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            f.write(text.getvalue())
    except OSError as exc:
        raise InputError(f"--out: cannot write {out}: {exc.strerror}") from exc


def _write_rows(rows, stream, output_format):
    if output_format == "json":
        stream.write(json.dumps(rows, indent=2, ensure_ascii=False, default=_json_value))
        stream.write("\n")
        return
    # every row's keys, in the order met: a first row without an answer has no `gap`
    writer = csv.DictWriter(stream, fieldnames=list(dict.fromkeys(
        key for row in rows for key in row)))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False, default=_json_value)
                         if isinstance(v, (dict, list)) else v for k, v in row.items()})


def _is_iso_date(pd, cell):
    try:
        _iso_dates(pd, pd.Series([cell]))
    except (TypeError, ValueError):
        return False
    return True


def _iso_dates(pd, values):
    """``values`` read as ISO 8601 dates or times (pandas before 2.0, which has no
    ``format="ISO8601"``, infers the format)."""
    if int(pd.__version__.split(".")[0]) < 2:
        return pd.to_datetime(values)
    return pd.to_datetime(values, format="ISO8601")


def _frame(header, values):
    if hasattr(values, "columns"):
        return values
    try:
        import pandas as pd
    except ImportError:
        return values
    return pd.DataFrame(values, columns=header)


def _by_position(params, header):
    """``params`` with the CSV's column names in the by-feature parameters turned into
    positions: without pandas the explainer sees arrays, whose columns have no names."""
    def position(name, key):
        if not isinstance(name, str):
            return name
        if name not in header:
            raise InputError(f"--params {key}: no column {name!r} (columns: {header})")
        return header.index(name)

    for key in (*_LIST_PARAMS, *_DICT_PARAMS):
        value = params.get(key)
        if isinstance(value, dict):
            params[key] = {position(name, key): v for name, v in value.items()}
        elif isinstance(value, list):
            params[key] = [position(name, key) for name in value]
    return params


def _explain(args):
    from . import CEMExplainer, CounterfactualExplainer
    from ._gradients import is_deep_model

    _check_out(args.out, args)
    model = _load_model(args.model)
    from ._validation import kind_other_than_classifier

    kind = None if callable(model) else kind_other_than_classifier(model)
    if kind is not None:
        raise InputError(f"--model: the {type(model).__name__} is {kind}; skcem explains "
                         "classifiers (a PN or counterfactual changes the predicted class)")
    from ._decision_scores import scored_by_decision

    if not (hasattr(model, "predict_proba") or callable(model) or scored_by_decision(model)):
        from ._validation import probabilities_hint

        raise InputError(f"--model: the {type(model).__name__} has neither predict_proba nor a "
                         "decision_function whose largest score it predicts, which the "
                         f"explainers need: {probabilities_hint(model)}")
    files = {"--data": args.data} | ({"--train": args.train} if args.train else {})
    tables = {option: _read_table(path, option) for option, path in files.items()}
    for option_name, names in (("--drop", args.drop), ("--dates", args.dates)):
        unknown = [name for name in names
                   if not any(name in header for header, _ in tables.values())]
        if unknown:
            raise InputError(f"{option_name}: no column {unknown} in {' or '.join(files)}")
    # Deep models take float tensors: their rows stay floats.
    whole_as_int = not is_deep_model(model)
    texts = _text_columns(model, tables["--data"][0])
    ordered = _parse_ordered(args.ordered, files, tables, args.dates, args.drop, model)
    header, data = _model_columns(
        model, *_as_ordered(*_read_mixed(args.data, "--data", args.drop, tables["--data"],
                                         args.dates, whole_as_int, texts | set(ordered)),
                            ordered, args.data), "--data")
    train = data
    if args.train:
        train_header, train = _model_columns(
            model, *_as_ordered(*_read_mixed(args.train, "--train", args.drop,
                                             tables["--train"], args.dates, whole_as_int,
                                             texts | set(ordered)), ordered, args.train),
            "--train")
        if hasattr(train, "columns"):
            _reorder(train_header, np.empty((0, len(train_header))), header, "--train")
            train = train[header]
        else:
            train = _reorder(train_header, train, header, "--train")
    model = _reading_the_column_as_documents(model, header)
    params = _parse_params(args.params)
    if args.n_counterfactuals is not None:
        if args.mode != "CF":
            raise InputError("--n-counterfactuals: only with --mode CF")
        if args.n_counterfactuals < 1:
            raise InputError("--n-counterfactuals: must be 1 or more; got "
                             f"{args.n_counterfactuals}")
        if "n_counterfactuals" in params:
            raise InputError("--params: give n_counterfactuals with --n-counterfactuals only")
        params["n_counterfactuals"] = args.n_counterfactuals
    if args.mode == "CF":
        explainer, options = CounterfactualExplainer, {"estimator": "--model",
                                                       "verbose": "--quiet"}
    else:
        explainer, options = CEMExplainer, {"estimator": "--model", "mode": "--mode",
                                            "verbose": "--quiet"}
    _check_params(params, explainer, options)
    if "target_class" in params:
        params["target_class"] = _as_model_labels(params["target_class"], model)
    if args.mode != "CF":
        params["mode"] = args.mode
    named = hasattr(_frame(header, data[:0]), "columns")
    if not named:  # no pandas: arrays, their columns named below
        params = _by_position(params, header)
    recorded = _Warnings("explain", args.quiet, explainer)
    try:
        cem = explainer(model, verbose=_verbosity(args), **params)
        with recorded:
            # A model without feature names takes the CSV's columns in order (documented).
            cem.fit(_frame(header, train))
            exp = cem.explain(_frame(header, data))
        if not named:
            exp = dataclasses.replace(exp, feature_names=list(header))
    except (TypeError, ValueError) as exc:
        raise InputError(_in_flags(str(exc).splitlines()[0], explainer)
                         + _input_shape_hint(exc) + _dates_hint(data, args.dates)
                         + _category_dtype_hint(model, data)
                         + _missing_rows_hint(exc, {"--data": data, "--train": train}
                                              if args.train else {"--data": data})) from exc
    if not args.train and not args.quiet:
        print("skcem explain: note: no --train: the no-information values and feature ranges "
              f"are learned from the rows explained ({args.data}); give the training rows "
              "with --train", file=sys.stderr)
    recorded.show()
    rows = []
    fixed = exp.fixed()
    # (several answers asked by --n-counterfactuals, or by --params n_counterfactuals=k)
    ranked = getattr(cem, "n_counterfactuals", 1) > 1
    answers = _answer_rows(exp, header, ranked) if args.answers else None
    for i, changes in enumerate(exp.changes()):
        # Several counterfactuals: a row per answer, closest first ("rank"), each of its class.
        for rank, changed in enumerate(changes if ranked else [changes]):
            after = exp.counterfactual_pred[i, rank] if ranked else exp.explanation_pred[i]
            distance = float(exp.counterfactual_distance[i, rank] if ranked
                             else exp.distance[i])
            rows.append({"row": i} | ({"rank": rank} if ranked else {}) | {
                "found": bool(exp.found[i]), "class": _plain(exp.X_pred[i]),
                f"{args.mode}_class": None if after is None else _plain(after),
                # the explainer's distance, by which several answers are ranked (to 12
                # digits: its sum of a row's moves reads 6.449999999999999 for 6.45)
                "distance": float(f"{distance:.12g}") if np.isfinite(distance) else None,
                "kept" if args.mode == "PP" else "changed": changed})
            if exp._holds_any():  # held by immutable_features or directions, not the search
                rows[-1]["fixed"] = fixed[i]
            if exp.gap is not None and rank == 0:  # search=exact: the closest answer's
                gap = float(exp.gap[i])
                rows[-1]["gap"] = gap if np.isfinite(gap) else None
            if answers is not None:
                rows[-1]["answer"] = answers[i][rank] if exp.found[i] else None
        if ranked and not changes:
            rows.append({"row": i, "rank": None, "found": False,
                         "class": _plain(exp.X_pred[i]), f"{args.mode}_class": None,
                         "distance": None, "changed": {}}
                        | ({"fixed": {}} if exp._holds_any() else {})
                        | ({"answer": None} if answers is not None else {}))
    _write(rows, args.out, args.format)
    if not args.quiet:
        where = "standard output" if args.out == "-" else args.out
        print(f"{int(exp.found.sum())} of {len(exp)} {args.mode}s found; written to {where}",
              file=sys.stderr)


def _answer_rows(exp, header, ranked):
    """Each instance's answers as ``{feature: plain value}``, one list per instance (closest
    first; one answer without ``ranked``)."""
    table = exp.counterfactuals if ranked else exp.explanation
    values = table.to_numpy(dtype=object) if hasattr(table, "columns") else \
        np.asarray(table, dtype=object)
    names = [str(name) for name in (table.columns if hasattr(table, "columns") else header)]
    k = len(values) // max(len(exp), 1)
    return [[{name: _plain(value) for name, value in zip(names, values[i * k + rank])}
             for rank in range(k)] for i in range(len(exp))]


def _similarity(args):
    from . import GradientSimilarityExplainer

    _check_out(args.out, args)
    params = _parse_params(args.params)
    _check_params(params, GradientSimilarityExplainer,
                  {"estimator": "--model", "sim_fn": "--sim-fn", "task": "--task",
                   "verbose": "--quiet"})
    model = _load_model(args.model)
    features, X_train, y_train = _read_train(args, model)
    features, X_train = _model_columns(model, features, X_train, "--train")
    X_train = _as_documents(model, features, X_train, "--train")
    # The test targets are --data's --target column where it has one (a regressor's must);
    # a classifier's are its predictions otherwise.
    regression = args.task == "regression"
    data_header, data_rows = _read_table(args.data, "--data")
    y_data = None
    if args.target in data_header:
        column = data_header.index(args.target)
        y_data = _targets(args.data, "--data", data_header, data_rows, column, model)
    elif regression:
        raise InputError(f"--data: --task regression needs each row's target: a column "
                         f"{args.target!r} (--target) in {args.data}")
    data_header, data = _model_columns(
        model, *_read_features(args.data, "--data", data_header, data_rows, args.target,
                               model, args.drop), "--data")
    if hasattr(data, "columns"):
        _reorder(data_header, np.empty((0, len(data_header))), features, "--data")
        data = data[features]
    else:
        data = _reorder(data_header, data, features, "--data")
    data = _as_documents(model, features, data, "--data")
    if not 1 <= args.k <= len(X_train):
        raise InputError(f"-k: must be 1 to the {len(X_train)} rows of --train; got {args.k}")
    recorded = _Warnings("similarity", args.quiet, GradientSimilarityExplainer)
    try:
        with recorded:
            # the columns were matched to the model's by name above; the explainer passes
            # arrays without names to the model
            explainer = GradientSimilarityExplainer(model, sim_fn=args.sim_fn, task=args.task,
                                                    verbose=_verbosity(args),
                                                    **params).fit(X_train, y_train)
            scores, indices = explainer.kneighbors(data, n_neighbors=args.k, y=y_data)
    except (TypeError, ValueError) as exc:
        raise InputError(_in_flags(str(exc).splitlines()[0], GradientSimilarityExplainer)
                         + _input_shape_hint(exc)) from exc
    recorded.show()
    rows = [{"row": i, "neighbors": indices[i].tolist(),
             "scores": [float(s) for s in scores[i]]} for i in range(len(data))]
    _write(rows, args.out, args.format)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def build_parser():
    parser = argparse.ArgumentParser(prog="skcem", description="Contrastive explanations.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="explain an MLP on scikit-learn's digits")
    demo.add_argument("-n", "--n-instances", type=int, default=5,
                      help="test digits explained (default: %(default)s)")
    demo.add_argument("--figure", default="skcem_demo.png",
                      help="PNG file to write (default: %(default)s)")

    explain = commands.add_parser("explain", help="PN/PP (CEMExplainer) or counterfactuals "
                                                  "(CounterfactualExplainer) of a saved model "
                                                  "for rows of a CSV")
    explain.add_argument("--model", required=True, help="joblib/pickle file or .keras model")
    explain.add_argument("--data", required=True,
                         help="CSV with a header: rows to explain (- for standard input)")
    explain.add_argument("--train", help="CSV for no_info_val and feature range (default: "
                                         "--data)")
    explain.add_argument("--drop", nargs="*", default=[], metavar="COLUMN",
                         help="columns of --data or --train that are not features (a label)")
    explain.add_argument("--dates", nargs="*", default=[], metavar="COLUMN",
                         help="columns of ISO 8601 dates or times (read as datetimes, for a "
                              "model that takes them; otherwise a CSV's text is a category)")
    explain.add_argument("--ordered", nargs="*", default=[], metavar="COLUMN=LEVEL,LEVEL",
                         help="text columns whose categories are ordered, lowest first (read "
                              "as an ordered category, whose direction --params directions "
                              "can then give: education:increase)")
    explain.add_argument("--mode", choices=["PN", "PP", "CF"], default="PN",
                         help="pertinent negatives or positives, or counterfactuals "
                              "(default: %(default)s)")
    explain.add_argument("--params", nargs="*", metavar="KEY=VALUE",
                         help="the explainer's parameters, e.g. beta=0.2 max_iterations=500 "
                              "immutable_features=age,sex (a list: a,b or [\"a\", \"b\"]) "
                              "directions=age:increase feature_range=hours:20:60 (by column: "
                              "name:value pairs, or a Python dict)")
    explain.add_argument("--n-counterfactuals", type=int, metavar="K",
                         help="--mode CF: K distinct counterfactuals per row, closest first, "
                              "written one per line with their 'rank'")
    explain.add_argument("--format", choices=["json", "csv"], default="json",
                         help="of --out - (standard output; default: %(default)s)")
    explain.add_argument("--out", required=True,
                         help="output .json or .csv, or - for standard output (in --format): "
                              "a row per instance with its class, the "
                              "answer's class, its 'distance' (the explainer's, by which "
                              "several answers are ranked) and, as {feature: value}, the "
                              "features a PN or "
                              "a counterfactual changes ('changed') or a PP keeps ('kept'); "
                              "with immutable_features, their values apart ('fixed'); where "
                              "the exact search answered (search=exact, or auto on trees for "
                              "rows the gradient-free search left), the closest answer's "
                              "proven relative 'gap' (0: optimal; near 1: no useful bound)")
    explain.add_argument("--answers", action="store_true",
                         help="write each answer's whole row too ('answer': {feature: value} "
                              "for every feature, null where none was found): a PP's other "
                              "features at their no-information values, a category as it is")
    explain.add_argument("--quiet", action="store_true",
                         help="no progress bar, notes or warnings on stderr")

    similarity = commands.add_parser("similarity", help="most similar training rows")
    similarity.add_argument("--model", required=True,
                            help="joblib/pickle file or .keras model")
    similarity.add_argument("--train", required=True, help="CSV of training rows and target")
    similarity.add_argument("--target", required=True,
                            help="the target column of --train; where --data has it too, its "
                                 "rows' targets (a classifier's predictions otherwise)")
    similarity.add_argument("--data", required=True,
                            help="CSV of rows to explain (- for standard input)")
    similarity.add_argument("--drop", nargs="*", default=[], metavar="COLUMN",
                            help="columns of --data or --train that are not features (an "
                                 "index written by to_csv)")
    similarity.add_argument("-k", type=int, default=5,
                            help="neighbours per row (default: %(default)s)")
    similarity.add_argument("--sim-fn", default="grad_dot",
                            choices=["grad_dot", "grad_cos", "grad_asym_dot"],
                            help="the similarity of the loss gradients (default: %(default)s)")
    similarity.add_argument("--task", default="classification",
                            choices=["classification", "regression"],
                            help="regression compares the gradients of the targets' loss "
                                 "(default: %(default)s)")
    similarity.add_argument("--params", nargs="*", metavar="KEY=VALUE",
                            help="GradientSimilarityExplainer parameters, e.g. "
                                 "precompute_grads=True n_components=1024 n_jobs=2")
    similarity.add_argument("--format", choices=["json", "csv"], default="json",
                            help="of --out - (standard output; default: %(default)s)")
    similarity.add_argument("--out", required=True,
                            help="output .json or .csv, or - for standard output (in "
                                 "--format): per row of --data its k most similar training "
                                 "rows and their scores")
    similarity.add_argument("--quiet", action="store_true",
                            help="no progress bar or warnings on stderr")
    parser.commands = {"demo": demo, "explain": explain, "similarity": similarity}
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own usage, and where an explainer's parameters go
        hint = "; an explainer's parameters go in --params key=value (see --help)" \
            if args.command != "demo" and any(u.startswith("--") for u in unknown) else ""
        parser.commands[args.command].error(
            f"unrecognized arguments: {' '.join(unknown)}{hint}")
    try:
        if args.command == "demo":
            from ._demo import run_demo

            _check_demo(args)
            try:
                run_demo(n_instances=args.n_instances, figure=args.figure)
            except OSError as exc:  # the figure, written last
                raise InputError(f"--figure: cannot write {args.figure}: "
                                 f"{exc.strerror or exc}") from exc
        elif args.command == "explain":
            _explain(args)
        else:
            _similarity(args)
    except InputError as exc:
        print(f"skcem {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's code for SIGINT
        print(f"skcem {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # --out - read by a command that stopped reading (head)
        # Python's advice: no second error when the interpreter flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
