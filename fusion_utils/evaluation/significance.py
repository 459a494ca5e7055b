"""Significance of the improvement: DeLong's paired AUROC test and bootstrap confidence intervals.

What each test tests
--------------------
:func:`delong_test` - for one class (one-vs-rest), the null hypothesis that two classifiers scored
on the **same test records** (paired) have equal AUROC. The AUROC is the Mann-Whitney statistic;
its variance and the covariance between the two classifiers' AUROCs come from DeLong's structural
components (DeLong, DeLong & Clarke-Pearson 1988), computed with the fast mid-rank algorithm of
Sun & Xu (2014, IEEE Signal Processing Letters 21(11):1389-1393) in O(N log N). The statistic
``z = (AUC_b - AUC_a) / sqrt(Var(AUC_a) + Var(AUC_b) - 2 Cov(AUC_a, AUC_b))`` is compared with
a standard normal, two-sided. No resampling, no distributional assumption on the scores.

:func:`bootstrap_macro_ci` - percentile 95% intervals for the macro metrics of each model and for
their difference, from ``n_bootstrap`` resamples of the test set drawn **with replacement within
each true class** (stratified, so every class keeps its test count), seeded. The same resampled
records score both models, so the interval of the difference is paired too.

:func:`stars` - the paper's Fig. 4 marks: ``**`` for p <= 0.05, ``*`` for p <= 0.10.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

__all__ = [
    "DeLongResult",
    "bootstrap_macro_ci",
    "classwise_delong",
    "delong_test",
    "delong_variance",
    "fast_auc",
    "stars",
]


@dataclass(frozen=True)
class DeLongResult:
    """Result of :func:`delong_test` (``diff = auc_b - auc_a``)."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float


def _structural(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """AUCs and structural components V10 (positives) and V01 (negatives) for each score row.

    ``scores`` has shape (n_classifiers, n). Sun & Xu (2014), Algorithm 2, via mid-ranks.
    """
    pos = np.asarray(y_true, bool)
    m, n = int(pos.sum()), int((~pos).sum())
    X, Y = scores[:, pos], scores[:, ~pos]
    k = scores.shape[0]
    tx = np.vstack([rankdata(X[r]) for r in range(k)])
    ty = np.vstack([rankdata(Y[r]) for r in range(k)])
    tz = np.vstack([rankdata(np.concatenate([X[r], Y[r]])) for r in range(k)])
    auc = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def _check_binary(y_true: Sequence, *scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    if y.dtype != bool:
        values = np.unique(y)
        if not set(values.tolist()) <= {0, 1}:
            raise ValueError(f"y_true must be boolean or 0/1 (one-vs-rest), got values {values[:5]}")
        y = y.astype(bool)
    S = np.vstack([np.asarray(s, float) for s in scores])
    if S.shape[1] != len(y):
        raise ValueError(f"scores have {S.shape[1]} values for {len(y)} labels")
    if y.all() or (~y).all():
        raise ValueError("y_true needs at least one positive and one negative record")
    return y, S


def delong_variance(y_true: Sequence, score: Sequence[float]) -> tuple[float, float]:
    """AUROC of one classifier and its DeLong variance."""
    y, S = _check_binary(y_true, score)
    auc, v10, v01 = _structural(y, S)
    m, n = v10.shape[1], v01.shape[1]
    var = np.var(v10[0], ddof=1) / m + np.var(v01[0], ddof=1) / n
    return float(auc[0]), float(var)


def fast_auc(y_true: Sequence, score: Sequence[float]) -> float:
    """AUROC by mid-ranks (equals ``sklearn.metrics.roc_auc_score``; NaN if one class only)."""
    y = np.asarray(y_true, bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan")
    r = rankdata(np.asarray(score, float))
    return float((r[y].sum() - m * (m + 1) / 2.0) / (m * n))


def delong_test(y_true: Sequence, score_a: Sequence[float], score_b: Sequence[float]
                ) -> DeLongResult:
    """DeLong's paired test of AUROC(a) = AUROC(b) on the same records (two-sided).

    Parameters
    ----------
    y_true : sequence of bool or 0/1
        Positive class indicator (one-vs-rest).
    score_a, score_b : sequences of float
        Scores of the two classifiers for the same records (e.g. image-only and fused
        probabilities of the class).

    Returns
    -------
    DeLongResult
        ``diff = auc_b - auc_a``, its standard error, z and the two-sided p-value. Identical
        classifiers give ``z = 0``, ``p = 1``.
    """
    y, S = _check_binary(y_true, score_a, score_b)
    auc, v10, v01 = _structural(y, S)
    m, n = v10.shape[1], v01.shape[1]
    cov = np.cov(v10) / m + np.cov(v01) / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(auc[1] - auc[0])
    if var <= 1e-18:
        z = 0.0 if abs(diff) < 1e-15 else float(np.sign(diff) * np.inf)
        se = 0.0
    else:
        se = float(np.sqrt(var))
        z = diff / se
    p = float(2 * norm.sf(abs(z)))
    return DeLongResult(float(auc[0]), float(auc[1]), diff, se, float(z), p)


def stars(p: float | None) -> str:
    """``"**"`` for p <= 0.05, ``"*"`` for p <= 0.10, else ``""`` (NaN or None: ``""``)."""
    if p is None or not np.isfinite(p):
        return ""
    return "**" if p <= 0.05 else "*" if p <= 0.10 else ""


def classwise_delong(y_true: Sequence, proba_image: np.ndarray, proba_fused: np.ndarray,
                     classes: Sequence[str]) -> pd.DataFrame:
    """DeLong's test per class (one-vs-rest), image-only vs fused on the same test set.

    Returns
    -------
    DataFrame
        ``class, auc_image, auc_fused, diff (fused - image, AUROC units), se, z, p_value, stars``.
        A class absent from ``y_true`` (or the only class) gives NaN with a warning.
    """
    y = np.asarray(y_true).astype(str)
    rows = []
    for k, cls in enumerate(np.asarray(classes, dtype=str)):
        pos = y == cls
        if pos.all() or not pos.any():
            warnings.warn(f"class {cls!r}: DeLong's test needs positives and negatives in the "
                          "test set; result set to NaN", UserWarning, stacklevel=2)
            rows.append({"class": cls, "auc_image": np.nan, "auc_fused": np.nan, "diff": np.nan,
                         "se": np.nan, "z": np.nan, "p_value": np.nan, "stars": ""})
            continue
        r = delong_test(pos, proba_image[:, k], proba_fused[:, k])
        rows.append({"class": cls, "auc_image": r.auc_a, "auc_fused": r.auc_b, "diff": r.diff,
                     "se": r.se, "z": r.z, "p_value": r.p_value, "stars": stars(r.p_value)})
    return pd.DataFrame(rows)


def _macro_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    from fusion_utils.evaluation.metrics import per_class_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = per_class_metrics(y, proba, classes, warn=False)
        return np.nanmean(table.to_numpy(float), axis=0)


def bootstrap_macro_ci(y_true: Sequence, probas: dict[str, np.ndarray], classes: Sequence[str],
                       n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                       difference: tuple[str, str] | None = ("image", "fused")) -> pd.DataFrame:
    """Stratified, seeded percentile bootstrap intervals for the macro-mean metrics.

    Parameters
    ----------
    y_true : sequence of str
        True classes of the test records.
    probas : dict
        Model name -> probabilities (n, n_classes), columns in ``classes`` order.
    classes : sequence of str
    n_bootstrap : int
        Number of resamples.
    seed : int
        Seed of ``numpy.random.default_rng``.
    level : float
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
    difference : (base, new) or None
        Also report ``new - base`` (paired: same resample for both models), as model
        ``"<new>-<base>"``.

    Returns
    -------
    DataFrame
        ``metric, model, estimate, ci_low, ci_high, n_bootstrap``; the estimate is the value on
        the full test set.
    """
    from fusion_utils.evaluation.metrics import METRICS

    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={n_bootstrap}: pass a positive number of resamples")
    y = np.asarray(y_true).astype(str)
    classes = np.asarray(classes, dtype=str)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)]
    names = list(probas)
    full = {m: _macro_metrics(y, np.asarray(probas[m], float), classes) for m in names}
    boots = {m: np.empty((n_bootstrap, len(METRICS))) for m in names}
    for b in range(n_bootstrap):
        idx = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
        for m in names:
            boots[m][b] = _macro_metrics(y[idx], np.asarray(probas[m], float)[idx], classes)
    if difference is not None and all(d in probas for d in difference):
        base, new = difference
        key = f"{new}-{base}"
        full[key] = full[new] - full[base]
        boots[key] = boots[new] - boots[base]
        names.append(key)
    alpha = (1 - level) / 2
    rows = []
    for m in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanquantile(boots[m], alpha, axis=0)
            hi = np.nanquantile(boots[m], 1 - alpha, axis=0)
        for j, metric in enumerate(METRICS):
            rows.append({"metric": metric, "model": m, "estimate": full[m][j], "ci_low": lo[j],
                         "ci_high": hi[j], "n_bootstrap": n_bootstrap})
    return pd.DataFrame(rows)
