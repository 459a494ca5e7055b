"""The metadata mapping G of the paper's Eq. (2): patient metadata -> numbers.

:class:`MetadataEncoder` is a scikit-learn transformer, fitted on the training split only.

The paper's mapping (``encoding="paper"``, the default):

- numeric columns are passed through as they are;
- date-time columns (``'yyyy-MM-dd hh:mm:ss'`` and ISO 8601 variants such as
  ``2001-05-28T12:49:25``, or a plain date) become six numbers, e.g.
  ``2001-05-28 12:49:25 -> [2001, 5, 28, 12, 49, 25]``, named ``<col>.year`` ...
  ``<col>.second``;
- every other column becomes a category index learned on the training split (categories sorted
  by their text, indices 0, 1, ...); a category not seen in training maps to -1;
- missing values (NaN, None, empty text) become -1, "the minimum value to differentiate it from
  the rest of the data".

Options for comparison: ``"standardised"`` applies the paper's mapping and then centres and
scales every output column with the training mean and standard deviation (missing values are
set to the training mean, i.e. 0 after scaling); ``"onehot"`` keeps numbers and date parts as in
the paper, and replaces each categorical column with one 0/1 indicator per training category
(``<col>=<value>``; unseen and missing rows are all zeros).

Columns may be given with the manifest's ``meta.`` prefix or without it; output names never carry
the prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

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


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def parse_datetime_column(values: pd.Series, column: str) -> np.ndarray:
    """Parse a date-time column into an (n, 6) float array; missing entries give -1.

    Parameters
    ----------
    values : Series
        Text such as ``"2001-05-28 12:49:25"``, ISO ``"2001-05-28T12:49:25"``, a date
        ``"2001-05-28"`` (time parts 0), or ``datetime64`` / ``Timestamp`` values.
    column : str
        Name used in error messages.

    Raises
    ------
    ValueError
        For a value that is not a valid date-time; the message names the column and the value.
    """
    out = np.full((len(values), 6), -1.0)
    for i, v in enumerate(values.tolist()):
        if _is_missing(v):
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


def _looks_datetime(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = [v for v in series.tolist() if not _is_missing(v)]
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

    Attributes
    ----------
    columns_ : list of str
        Input column names as found in the frame passed to ``fit``.
    kinds_ : dict
        Output-name (no prefix) -> ``"numeric"``, ``"datetime"`` or ``"categorical"``.
    categories_ : dict
        Categorical column -> list of training categories (index = position).
    mean_, scale_ : ndarray
        Training mean/std of the paper-mapped columns (``"standardised"`` only).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"meta.age": [56.0, None], "meta.recording_date": ["2001-05-28 12:49:25", None]})
    >>> MetadataEncoder().fit_transform(df)[0].tolist()
    [56.0, 2001.0, 5.0, 28.0, 12.0, 49.0, 25.0]
    """

    def __init__(self, encoding: str = "paper", datetime_columns: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None):
        self.encoding = encoding
        self.datetime_columns = datetime_columns
        self.columns = columns

    # -- helpers -----------------------------------------------------------------------------
    def _select(self, frame: pd.DataFrame) -> list[str]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"MetadataEncoder needs a pandas DataFrame, got {type(frame).__name__}")
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
                blocks.append(parse_datetime_column(series, name))
                names += [f"{name}.{p}" for p in DATETIME_PARTS]
            elif kind == "numeric":
                try:
                    vals = pd.to_numeric(series, errors="raise").astype(float).to_numpy()
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"metadata column {name!r} was numeric in training but now "
                                     f"holds non-numbers ({exc})") from exc
                blocks.append(np.where(np.isnan(vals), -1.0, vals)[:, None])
                names.append(name)
            else:
                index = {c: i for i, c in enumerate(self.categories_[name])}
                codes = [-1.0 if _is_missing(v) else float(index.get(_category_key(v), -1))
                         for v in series.tolist()]
                if self.encoding == "onehot":
                    cats = self.categories_[name]
                    onehot = np.zeros((len(codes), len(cats)))
                    for i, c in enumerate(codes):
                        if c >= 0:
                            onehot[i, int(c)] = 1.0
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
        self.columns_ = self._select(X)
        if not self.columns_:
            raise ValueError("no metadata columns to encode: pass a frame with meta.* columns")
        dt = None if self.datetime_columns is None else {_strip(c) for c in self.datetime_columns}
        self.kinds_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        for col in self.columns_:
            name, series = _strip(col), X[col]
            if (dt is not None and name in dt) or (dt is None and _looks_datetime(series)):
                self.kinds_[name] = "datetime"
            elif pd.api.types.is_bool_dtype(series):
                self.kinds_[name] = "categorical"
            elif pd.api.types.is_numeric_dtype(series):
                self.kinds_[name] = "numeric"
            else:
                numeric = pd.to_numeric(series, errors="coerce")
                present = series.map(lambda v: not _is_missing(v))
                if present.any() and numeric[present].notna().all():
                    self.kinds_[name] = "numeric"  # numbers stored as text
                else:
                    self.kinds_[name] = "categorical"
            if self.kinds_[name] == "categorical":
                values = {_category_key(v) for v in series.tolist() if not _is_missing(v)}
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
            std = filled.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        self.n_features_in_ = len(self.columns_)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` with what was learned in ``fit``; returns float64 (n, n_outputs)."""
        check_is_fitted(self, "kinds_")
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"MetadataEncoder needs a pandas DataFrame, got {type(X).__name__}")
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
            miss = self._lookup(X, col).map(_is_missing).to_numpy(bool)
            if self.kinds_[name] == "categorical":
                index = set(self.categories_[name])
                unseen = self._lookup(X, col).map(
                    lambda v, idx=index: not _is_missing(v) and _category_key(v) not in idx)
                miss = miss | unseen.to_numpy(bool)
            width = 6 if self.kinds_[name] == "datetime" else 1
            cols += [miss] * width
        return np.column_stack(cols) if cols else np.zeros((len(X), 0), bool)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names, without the ``meta.`` prefix (e.g. ``recording_date.year``)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
