"""The package's one bootstrap engine: stratified, paired, seeded percentile intervals.

Every confidence interval of the book comes from :func:`bootstrap_intervals`:

- **stratified**: each resample draws, with replacement, as many records of each true class as
  the test set has (Efron & Tibshirani 1993, ch. 8), so a rare class never vanishes from a
  resample and every class keeps its test count;
- **paired**: all models are scored on the same resampled records, so the interval of a
  difference between two models (``differences``) reflects the difference itself, not the
  two models' separate noise;
- **percentile** intervals at coverage ``level`` (0.95: the 2.5th and 97.5th percentiles of the
  resampled statistic), NaN resamples skipped;
- **seeded**: ``numpy.random.default_rng(seed)``; the same seed gives the same resamples.

The statistic is any function ``statistic(y, proba) -> float or 1-D array`` (the nine macro
metrics in :func:`fusion_utils.evaluation.significance.bootstrap_macro_ci`, the macro AUROC
for the metadata-only models and the drop-column ablation). scikit-learn has no bootstrap, and
``scipy.stats.bootstrap`` neither stratifies nor pairs several models on one resample, so the
loop is written out here, once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["bootstrap_intervals", "check_level", "difference_name", "stratified_resamples"]

Statistic = Callable[[np.ndarray, np.ndarray], "float | np.ndarray"]


def check_level(level: float) -> float:
    """``level`` as a float in (0, 1), or a ``ValueError`` naming the parameter."""
    if not 0 < float(level) < 1:
        raise ValueError(f"level={level}: pass the interval's coverage in (0, 1), e.g. 0.95")
    return float(level)


def difference_name(base: str, new: str) -> str:
    """Name of the paired difference ``new - base`` in the interval tables."""
    return f"{new} - {base}"


def stratified_resamples(y_true: Sequence, n_bootstrap: int, seed: int = 0
                         ) -> Iterator[np.ndarray]:
    """Row indices of ``n_bootstrap`` resamples, drawn with replacement within each true class.

    Parameters
    ----------
    y_true : sequence
        True classes; the strata are its distinct values (sorted).
    n_bootstrap : int
        Number of resamples.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Yields
    ------
    ndarray of int
        ``len(y_true)`` indices: for each class in sorted order, as many draws from its records as
        it has records.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={n_bootstrap}: pass a positive number of resamples")
    y = np.asarray(y_true).astype(str)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)]
    for _ in range(n_bootstrap):
        yield np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])


def bootstrap_intervals(y_true: Sequence, probas: Mapping[str, np.ndarray],
                        statistic: Statistic, *, names: Sequence[str] = ("value",),
                        n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                        differences: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """Stratified, paired percentile bootstrap of ``statistic`` for several models.

    Parameters
    ----------
    y_true : sequence of str
        True classes of the evaluation records.
    probas : mapping
        Model name -> scores ``(n, n_classes)`` for the same records.
    statistic : callable
        ``statistic(y, proba)`` -> a float or a 1-D array with one value per entry of ``names``.
    names : sequence of str
        Names of the statistic's values (column ``statistic`` of the result).
    n_bootstrap : int
        Number of resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the intervals (0.95: the 2.5th and 97.5th percentiles).
    differences : sequence of (base, new)
        Also report ``new - base``, computed on the same resamples (paired), as model
        :func:`difference_name` ``"<new> - <base>"``.

    Returns
    -------
    pandas.DataFrame
        ``model, statistic, estimate, ci_low, ci_high, n_bootstrap``; the estimate is the value
        on all the records. Models first (in ``probas`` order), then the differences.
    """
    level = check_level(level)
    y = np.asarray(y_true).astype(str)
    models = list(probas)
    for base, new in differences:
        for m in (base, new):
            if m not in probas:
                raise KeyError(f"difference {new!r} - {base!r}: no model {m!r}; have {models}")
    P = {m: np.asarray(probas[m], dtype=float) for m in models}
    for m, p in P.items():
        if p.shape[0] != len(y):
            raise ValueError(f"model {m!r}: {p.shape[0]} rows of scores for {len(y)} labels")
    k = len(names)

    def stat(yy: np.ndarray, p: np.ndarray) -> np.ndarray:
        out = np.atleast_1d(np.asarray(statistic(yy, p), dtype=float))
        if out.shape != (k,):
            raise ValueError(f"statistic returned {out.shape[0]} values for names {list(names)}")
        return out

    full = {m: stat(y, P[m]) for m in models}
    boots = {m: np.empty((n_bootstrap, k)) for m in models}
    for b, idx in enumerate(stratified_resamples(y, n_bootstrap, seed)):
        for m in models:
            boots[m][b] = stat(y[idx], P[m][idx])
    for base, new in differences:
        key = difference_name(base, new)
        full[key] = full[new] - full[base]
        boots[key] = boots[new] - boots[base]
    alpha = (1 - level) / 2
    rows = []
    for m in full:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a statistic NaN in every resample
            lo = np.nanquantile(boots[m], alpha, axis=0)
            hi = np.nanquantile(boots[m], 1 - alpha, axis=0)
        rows += [{"model": m, "statistic": name, "estimate": float(full[m][j]),
                  "ci_low": float(lo[j]), "ci_high": float(hi[j]), "n_bootstrap": n_bootstrap}
                 for j, name in enumerate(names)]
    return pd.DataFrame(rows)
