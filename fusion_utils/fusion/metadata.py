"""The metadata mapping G of the paper's Eq. (2): patient metadata -> numbers.

:class:`MetadataEncoder` is a scikit-learn transformer, fitted on the training split only.

The paper's mapping (``encoding="paper"``, the default):

- numeric columns are passed through as they are;
- date-time columns (``'yyyy-MM-dd hh:mm:ss'`` and ISO 8601 variants such as
  ``2001-05-28T12:49:25``, or a plain date) become six numbers, e.g.
  ``2001-05-28 12:49:25 -> [2001, 5, 28, 12, 49, 25]``, named ``<col>.year`` ...
  ``<col>.second``;
- every other column becomes a category index learned on the training split: the categories
  sorted by their text and numbered 1, 2, ..., K, as MATLAB's ``categorical`` numbers them
  ("the categories of B are the sorted unique values from A"; ``double(categorical(A))`` gives
  1..K, and ``findgroups`` numbers groups in the same sorted order). We follow ``categorical``
  because it is MATLAB's type for "grouped into categories" and its order does not depend on
  the order of the rows; ``grp2idx`` on text numbers categories in order of first appearance
  instead, which would change with the shuffling of the split. Starting at 1 keeps the codes
  apart from the -1 of a missing value (indices from 0 would put the first category next to
  it). A category not seen in training maps to -1;
- missing values (NaN, None, empty text, and the texts listed in ``missing_values``, by default
  ``"unknown"``) become -1, "the minimum value to differentiate it from the rest of the data".
  HAM10000's CSV writes ``unknown`` for a sex or a localization that was not recorded; the
  paper read the ISIC archive's JSON metadata, where the same entries are ``null``, so they were
  missing values there and are missing values here (``missing_values=()`` keeps ``unknown`` as
  a category of its own).

Options for comparison: ``"standardised"`` applies the paper's mapping and then centres and
scales every output column with the training mean and standard deviation (missing values are
set to the training mean, i.e. 0 after scaling); ``"onehot"`` keeps numbers and date parts as in
the paper, and replaces each categorical column with one 0/1 indicator per training category
(``<col>=<value>``; unseen and missing rows are all zeros).

Columns may be given with the manifest's ``meta.`` prefix or without it; output names never carry
the prefix.

Input: a pandas DataFrame (the intended use: columns are named and of mixed types), or a 2-D
array-like, whose columns are then named ``x0``, ``x1``, ... and matched by position in
``transform``. Empty, one-dimensional, sparse and complex input is refused with scikit-learn's
own errors (``sklearn.utils.validation.check_array``), so the encoder passes scikit-learn's
``check_estimator`` suite (``tests/fusion/test_metadata_estimator_checks.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = ["DATETIME_PARTS", "ENCODINGS", "MetadataEncoder", "parse_datetime_column"]

ENCODINGS: tuple[str, ...] = ("paper", "standardised", "onehot")
DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "hour", "minute", "second")
PREFIX = "meta."

# 'yyyy-MM-dd', 'yyyy-MM-dd hh:mm[:ss[.ffffff]]', ISO 'T' separator, optional zone suffix.
_DATETIME_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"(?:\s*(?:Z|[+-]\d{2}:?\d{2}))?\s*$"
)


def _strip(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _is_missing(value: Any, tokens: frozenset[str] = frozenset()) -> bool:
    """NaN, None, empty text, or a text whose case-folded, stripped form is in ``tokens``."""
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        return text == "" or text.casefold() in tokens
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def parse_datetime_column(values: pd.Series, column: str,
                          missing_values: frozenset[str] = frozenset()) -> np.ndarray:
    """Parse a date-time column into an (n, 6) float array; missing entries give -1.

    Parameters
    ----------
    values : Series
        Text such as ``"2001-05-28 12:49:25"``, ISO ``"2001-05-28T12:49:25"``, a date
        ``"2001-05-28"`` (time parts 0), or ``datetime64`` / ``Timestamp`` values.
    column : str
        Name used in error messages.
    missing_values : frozenset of str
        Case-folded texts that count as missing (besides NaN, None and empty text).

    Raises
    ------
    ValueError
        For a value that is not a valid date-time; the message names the column and the value.
    """
    out = np.full((len(values), 6), -1.0)
    for i, v in enumerate(values.tolist()):
        if _is_missing(v, missing_values):
            continue
        if isinstance(v, pd.Timestamp | np.datetime64) or hasattr(v, "year"):
            ts = pd.Timestamp(v)
            out[i] = [ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second]
            continue
        m = _DATETIME_RE.match(str(v))
        if m is None:
            raise ValueError(
                f"metadata column {column!r}: cannot parse {v!r} as a date-time; expected "
                "'yyyy-MM-dd hh:mm:ss' (or ISO 8601 such as '2001-05-28T12:49:25'); fix the value "
                "or list the column as non-date with datetime_columns=[...]")
        parts = [int(p) if p is not None else 0 for p in m.groups()]
        try:  # validates month/day/hour ranges
            pd.Timestamp(year=parts[0], month=parts[1], day=parts[2], hour=parts[3],
                         minute=parts[4], second=parts[5])
        except ValueError as exc:
            raise ValueError(f"metadata column {column!r}: invalid date-time {v!r} ({exc})") \
                from exc
        out[i] = parts
    return out


def _looks_datetime(series: pd.Series, tokens: frozenset[str] = frozenset()) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = [v for v in series.tolist() if not _is_missing(v, tokens)]
    if not present:
        return False
    hits = sum(bool(_DATETIME_RE.match(str(v))) if isinstance(v, str) else hasattr(v, "year")
               for v in present)
    return hits / len(present) >= 0.9  # a few malformed values still make a date column


def _category_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class MetadataEncoder(TransformerMixin, BaseEstimator):
    """Map a metadata table to numbers (the paper's G, Eq. 2), fitted on the training split.

    Parameters
    ----------
    encoding : {"paper", "standardised", "onehot"}
        The paper's mapping (default) or one of the comparison variants (module docstring).
    datetime_columns : sequence of str, optional
        Columns to parse as date-times (with or without the ``meta.`` prefix). ``None``
        auto-detects columns whose values look like ``yyyy-MM-dd[ hh:mm:ss]`` / ISO 8601.
    columns : sequence of str, optional
        Metadata columns to use; default: every ``meta.*`` column if there is any, else all.
    missing_values : sequence of str
        Texts that mean "not recorded" and become -1 like NaN (compared case-insensitively);
        default ``("unknown",)``, HAM10000's placeholder for what ISIC's JSON stores as null.

    Attributes
    ----------
    columns_ : list of str
        Input column names as found in the frame passed to ``fit``.
    kinds_ : dict
        Output-name (no prefix) -> ``"numeric"``, ``"datetime"`` or ``"categorical"``.
    categories_ : dict
        Categorical column -> sorted list of training categories (category index = position + 1).
    n_features_in_ : int
        Number of input columns used.
    mean_, scale_ : ndarray
        Training mean/std of the paper-mapped columns (``"standardised"`` only).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"meta.age": [56.0, None],
    ...                    "meta.recording_date": ["2001-05-28 12:49:25", None]})
    >>> MetadataEncoder().fit_transform(df)[0].tolist()
    [56.0, 2001.0, 5.0, 28.0, 12.0, 49.0, 25.0]
    >>> sex = pd.DataFrame({"sex": ["male", "female", "unknown", None]})
    >>> MetadataEncoder().fit_transform(sex)[:, 0].tolist()
    [2.0, 1.0, -1.0, -1.0]
    """

    def __init__(self, encoding: str = "paper", datetime_columns: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None,
                 missing_values: Sequence[str] = ("unknown",)):
        self.encoding = encoding
        self.datetime_columns = datetime_columns
        self.columns = columns
        self.missing_values = missing_values

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is a missing value: -1
        tags.input_tags.string = True  # text columns become category indices
        tags.input_tags.categorical = True  # pandas categorical columns too
        return tags

    # -- helpers -----------------------------------------------------------------------------
    def _tokens(self) -> frozenset[str]:
        values = self.missing_values
        if isinstance(values, str):
            values = (values,)
        return frozenset(str(v).strip().casefold() for v in (values or ()))

    def _missing(self, value: Any) -> bool:
        return _is_missing(value, self._tokens_)

    def _as_frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """``X`` as a DataFrame; arrays get columns ``x0``, ``x1``, ... (by position after fit).

        Empty, 1-D, sparse and complex input raise scikit-learn's errors (``check_array``).
        """
        if isinstance(X, pd.DataFrame):
            for axis, what in ((0, "sample"), (1, "feature")):
                if X.shape[axis] < 1:
                    raise ValueError(f"Found array with 0 {what}(s) (shape={X.shape}) while a "
                                     "minimum of 1 is required by MetadataEncoder.")
            return X
        arr = check_array(X, dtype=None, accept_sparse=False, ensure_all_finite=False,
                          estimator=self, input_name="X")
        n = arr.shape[1]
        if reset:
            names = [f"x{j}" for j in range(n)]
        else:
            if n != self.n_features_in_:
                raise ValueError(f"X has {n} features, but MetadataEncoder is expecting "
                                 f"{self.n_features_in_} features as input.")
            names = list(self.columns_)
        return pd.DataFrame(arr, columns=names)

    def _select(self, frame: pd.DataFrame) -> list[str]:
        if self.columns is not None:
            found = []
            for c in self.columns:
                for cand in (c, PREFIX + _strip(c), _strip(c)):
                    if cand in frame.columns:
                        found.append(cand)
                        break
                else:
                    raise KeyError(f"metadata column {c!r} not in the frame; available: "
                                   f"{', '.join(map(str, frame.columns))}")
            return found
        meta = [c for c in frame.columns if str(c).startswith(PREFIX)]
        return meta or [str(c) for c in frame.columns]

    def _lookup(self, frame: pd.DataFrame, name: str) -> pd.Series:
        for cand in (name, PREFIX + name, _strip(name)):
            if cand in frame.columns:
                return frame[cand]
        raise KeyError(f"metadata column {name!r} (fitted) is missing from the frame; pass a frame "
                       f"with the columns {', '.join(self.columns_)}")

    def _paper(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        blocks, names = [], []
        for col in self.columns_:
            name = _strip(col)
            series = self._lookup(frame, col)
            kind = self.kinds_[name]
            if kind == "datetime":
                blocks.append(parse_datetime_column(series, name, self._tokens_))
                names += [f"{name}.{p}" for p in DATETIME_PARTS]
            elif kind == "numeric":
                if series.dtype == object:
                    series = series.map(lambda v: np.nan if self._missing(v) else v)
                try:
                    vals = pd.to_numeric(series, errors="raise").astype(float).to_numpy()
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"metadata column {name!r} was numeric in training but now "
                                     f"holds non-numbers ({exc})") from exc
                if np.isinf(vals).any():
                    raise ValueError(f"Input X contains infinity: metadata column {name!r}; "
                                     "replace it by a number or by NaN (missing)")
                blocks.append(np.where(np.isnan(vals), -1.0, vals)[:, None])
                names.append(name)
            else:
                # 1..K in sorted order (MATLAB's categorical); unseen and missing -> -1
                index = {c: i + 1 for i, c in enumerate(self.categories_[name])}
                codes = [-1.0 if self._missing(v) else float(index.get(_category_key(v), -1))
                         for v in series.tolist()]
                if self.encoding == "onehot":
                    cats = self.categories_[name]
                    onehot = np.zeros((len(codes), len(cats)))
                    for i, c in enumerate(codes):
                        if c >= 1:
                            onehot[i, int(c) - 1] = 1.0
                    blocks.append(onehot)
                    names += [f"{name}={c}" for c in cats]
                else:
                    blocks.append(np.asarray(codes)[:, None])
                    names.append(name)
        X = np.hstack(blocks) if blocks else np.zeros((len(frame), 0))
        return X, names

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> MetadataEncoder:
        """Learn column kinds, categories (and scaling) from the training metadata ``X``."""
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding={self.encoding!r}: expected one of {', '.join(ENCODINGS)}")
        self._tokens_ = self._tokens()
        X = self._as_frame(X, reset=True)
        self.columns_ = self._select(X)
        if not self.columns_:
            raise ValueError("no metadata columns to encode: pass a frame with meta.* columns")
        dt = None if self.datetime_columns is None else {_strip(c) for c in self.datetime_columns}
        self.kinds_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        for col in self.columns_:
            name, series = _strip(col), X[col]
            if ((dt is not None and name in dt)
                    or (dt is None and _looks_datetime(series, self._tokens_))):
                self.kinds_[name] = "datetime"
            elif pd.api.types.is_bool_dtype(series):
                self.kinds_[name] = "categorical"
            elif pd.api.types.is_numeric_dtype(series):
                self.kinds_[name] = "numeric"
            else:
                numeric = pd.to_numeric(series, errors="coerce")
                present = series.map(lambda v: not self._missing(v))
                if present.any() and numeric[present].notna().all():
                    self.kinds_[name] = "numeric"  # numbers stored as text
                else:
                    self.kinds_[name] = "categorical"
            if self.kinds_[name] == "categorical":
                values = {_category_key(v) for v in series.tolist() if not self._missing(v)}
                self.categories_[name] = sorted(values)
        paper, names = self._paper(X)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        if self.encoding == "standardised":
            missing = self._missing_mask(X)
            with np.errstate(invalid="ignore"):
                counts = (~missing).sum(axis=0)
                sums = np.where(missing, 0.0, paper).sum(axis=0)
                self.mean_ = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
            filled = np.where(missing, self.mean_, paper)
            std = filled.std(axis=0)  # N: scikit-learn's StandardScaler convention
            self.scale_ = np.where(std > 0, std, 1.0)
        self.n_features_in_ = len(self.columns_)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` with what was learned in ``fit``; returns float64 (n, n_outputs)."""
        check_is_fitted(self, "kinds_")
        X = self._as_frame(X, reset=False)
        out, _ = self._paper(X)
        if self.encoding == "standardised":
            # -1 marks a missing value in the paper's mapping; fill with the training mean
            missing = self._missing_mask(X)
            out = np.where(missing, self.mean_, out)
            out = (out - self.mean_) / self.scale_
        return out

    def _missing_mask(self, X: pd.DataFrame) -> np.ndarray:
        cols = []
        for col in self.columns_:
            name = _strip(col)
            miss = self._lookup(X, col).map(self._missing).to_numpy(bool)
            if self.kinds_[name] == "categorical":
                index = set(self.categories_[name])
                unseen = self._lookup(X, col).map(
                    lambda v, idx=index: not self._missing(v) and _category_key(v) not in idx)
                miss = miss | unseen.to_numpy(bool)
            width = 6 if self.kinds_[name] == "datetime" else 1
            cols += [miss] * width
        return np.column_stack(cols) if cols else np.zeros((len(X), 0), bool)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names, without the ``meta.`` prefix (e.g. ``recording_date.year``)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
