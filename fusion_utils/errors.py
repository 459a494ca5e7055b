"""Project error types: one per stage, each naming the file and what went wrong.

Every reader at a boundary (a CSV table, a WFDB record, an image, a cache file, a run
folder, a notebook parameter) catches the library's own exception where it arises and
re-raises one of these with the context a user needs: *which* file (and column, record
or image id), *what* is wrong with it, and *what to do* about it. The library exception
is kept as ``__cause__`` (``raise ... from exc``), never swallowed.

Errors caused by a bad value also subclass :class:`ValueError`, so callers that already
catch ``ValueError`` keep working; errors about damaged or missing files also subclass
:class:`OSError` where that is the natural category.

Use :func:`describe` to build messages of the form
``"<where>: <what is wrong>; <what to do>"``.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "ClassifierError",
    "DataError",
    "FeatureError",
    "FusionError",
    "MetricInputError",
    "NotebookParameterError",
    "RunFolderError",
    "ScalogramError",
    "describe",
]


class FusionError(Exception):
    """Base class of every error this project raises on purpose."""


class DataError(FusionError, ValueError):
    """A data table, signal record, image or download is missing, damaged or malformed."""


class ScalogramError(FusionError, ValueError):
    """A scalogram could not be computed, or a scalogram cache entry is unusable."""


class FeatureError(FusionError, ValueError):
    """A feature-extraction input (image) or a feature cache file is unusable."""


class ClassifierError(FusionError, ValueError):
    """A classifier got inputs it cannot train on (wrong shape, strings, NaN, one class)."""


class MetricInputError(FusionError, ValueError):
    """A metric got labels or scores it cannot evaluate (strings, NaN, mismatched lengths)."""


class RunFolderError(FusionError, ValueError):
    """A run folder (``metrics.parquet``, ``results.parquet``, ``run.json``...) is unusable."""


class NotebookParameterError(FusionError, TypeError, ValueError):
    """A notebook parameter has an unknown name or a value of the wrong type.

    Both a :class:`TypeError` (a value of the wrong type) and a :class:`ValueError` (what
    ``execute_notebook`` raised for unknown names before this type existed)."""


def describe(
    where: str | PathLike[str] | None,
    problem: str,
    remedy: str | None = None,
    *,
    column: str | None = None,
    record: object | None = None,
) -> str:
    """Format a message ``"<where>[, column C][, record R]: <problem>; <remedy>"``.

    Parameters
    ----------
    where
        The file (or folder, or object) the problem was found in; ``None`` omits it.
    problem
        What is wrong, in one clause (no trailing period needed).
    remedy
        What the user can do about it; omitted when ``None``.
    column, record
        Optional column name and record / image id, appended to *where*.

    Returns
    -------
    str
        The message.

    Examples
    --------
    >>> describe("ptbxl_database.csv", "column is missing", "re-download PTB-XL", column="age")
    "ptbxl_database.csv, column 'age': column is missing; re-download PTB-XL"
    """
    parts: list[str] = []
    if where is not None:
        parts.append(str(where))
    if column is not None:
        parts.append(f"column {column!r}")
    if record is not None:
        parts.append(f"record {record!r}")
    head = ", ".join(parts)
    msg = f"{head}: {problem}" if head else problem
    if remedy:
        msg = f"{msg}; {remedy}"
    return msg
