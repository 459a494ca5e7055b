"""Significance of the improvement: DeLong's paired AUROC test per configuration, a paired test
across networks (Fig. 4), and bootstrap confidence intervals.

What each test tests
--------------------
:func:`delong_test` - for one class (one-vs-rest), the null hypothesis that two classifiers scored
on the **same test records** (paired) have equal AUROC. The AUROC is the Mann-Whitney statistic;
its variance and the covariance between the two classifiers' AUROCs come from DeLong's structural
components (DeLong, DeLong & Clarke-Pearson 1988), computed with the fast mid-rank algorithm of
Sun & Xu (2014, IEEE Signal Processing Letters 21(11):1389-1393) in O(N log N). The statistic
``z = (AUC_b - AUC_a) / sqrt(Var(AUC_a) + Var(AUC_b) - 2 Cov(AUC_a, AUC_b))`` is compared with
a standard normal, two-sided. No resampling, no distributional assumption on the scores.

:func:`across_networks_test` - for one class and one set-up (dataset, BN/FT, augmentation), the
null hypothesis that adding metadata does not change the class's AUROC, tested across the
**networks**: each network gives one paired difference ``AUROC_fused - AUROC_image``, and the
Wilcoxon signed-rank test (default; MATLAB's ``signrank``) or the paired t-test (MATLAB's
``ttest``) asks whether those differences are centred on zero. This is what the paper's Fig. 4
draws: its boxes are the distributions of class-wise AUROC differences across the networks, and
its marks are "statistically significant differences between these distributions" (Sec. III.D).
The paper does not name its test; the book uses the signed-rank test because the differences
are paired (same networks with and without metadata) and eight values are too few to check the
t-test's normality. It needs several networks: with one network there is no distribution and
the p-value is NaN.

DeLong's test is the finer one: it asks the question of one configuration (one network) on its
test records, where the across-networks test asks whether metadata help that class whatever the
network.

:func:`bootstrap_macro_ci` - percentile intervals (``level``, default 95%) for the macro metrics of
each model and for their paired difference, from the package's one bootstrap engine
(:func:`fusion_utils.evaluation.bootstrap.bootstrap_intervals`: stratified by true class, the
same resamples for every model, seeded).

:func:`stars` - the paper's Fig. 4 marks: ``**`` for p <= 0.05, ``*`` for p <= 0.10.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from fusion_utils.evaluation.bootstrap import bootstrap_intervals
from fusion_utils.evaluation.metrics import METRICS, improvement, macro_auroc, midranks

__all__ = [
    "FIG4_TESTS",
    "DeLongResult",
    "across_networks_test",
    "bootstrap_macro_ci",
    "classwise_delong",
    "delong_test",
    "delong_variance",
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

    ``scores`` has shape (n_classifiers, n). Sun & Xu (2014), Algorithm 2, with the package's
    mid-ranks (:func:`fusion_utils.evaluation.metrics.midranks`). The AUC is the mean of V10
    (DeLong's theta), the same Mann-Whitney value as
    :func:`fusion_utils.evaluation.metrics.one_vs_rest_auroc`.
    """
    pos = np.asarray(y_true, bool)
    m, n = int(pos.sum()), int((~pos).sum())
    X, Y = scores[:, pos], scores[:, ~pos]
    tx = midranks(X, axis=1)
    ty = midranks(Y, axis=1)
    tz = midranks(np.concatenate([X, Y], axis=1), axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return v10.mean(axis=1), v10, v01


def _check_binary(y_true: Sequence, *scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    if y.dtype != bool:
        values = np.unique(y)
        if not set(values.tolist()) <= {0, 1}:
            raise ValueError("y_true must be boolean or 0/1 (one-vs-rest), got values "
                             f"{values[:5]}")
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


FIG4_TESTS: tuple[str, ...] = ("wilcoxon", "ttest")


def across_networks_test(classwise: pd.DataFrame, *,
                         by: Sequence[str] = ("dataset", "mode", "augment", "class"),
                         network: str = "backbone", test: str = "wilcoxon") -> pd.DataFrame:
    """Paired test across networks of the class-wise AUROC difference (the paper's Fig. 4).

    For each group (by default: dataset, BN/FT, augmentation and class) the networks give one
    paired difference each, ``fused - image``; runs of one network with several seeds are
    averaged first. The test asks whether these differences are centred on zero, two-sided.

    Parameters
    ----------
    classwise : pandas.DataFrame
        One row per configuration and class with ``image`` and ``fused`` AUROC (fractions), the
        ``by`` columns and the ``network`` column, e.g.
        :func:`fusion_utils.experiments.findings.class_improvements`. Missing ``by`` columns
        are treated as one value.
    by : sequence of str
        Columns that define one box of Fig. 4.
    network : str
        Column naming the network (the unit the differences are paired over).
    test : {"wilcoxon", "ttest"}
        ``"wilcoxon"``: Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, exact for small
        samples without ties; zero differences dropped, Wilcoxon's convention); ``"ttest"``:
        paired t-test (``scipy.stats.ttest_1samp`` of the differences against 0).

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``n_networks``, ``mean_improvement`` and
        ``median_improvement`` (percentage points,
        :func:`fusion_utils.evaluation.metrics.improvement`),
        ``statistic``, ``p_value``, ``stars`` and ``test``. Fewer than two networks give NaN;
        differences all zero give p = 1.
    """
    from scipy.stats import ttest_1samp, wilcoxon

    if test not in FIG4_TESTS:
        raise ValueError(f"test={test!r}: pass one of {FIG4_TESTS}")
    missing = {"image", "fused", network} - set(classwise.columns)
    if missing:
        raise ValueError(f"classwise table lacks column(s) {sorted(missing)}: pass one row per "
                         "configuration and class with image and fused AUROC and the network "
                         "(fusion_utils.experiments.findings.class_improvements)")
    frame = classwise.copy()
    by = list(by)
    for col in by:
        if col not in frame.columns:
            frame[col] = "all"
    per_net = (frame.groupby([*by, network], dropna=False, sort=False)[["image", "fused"]]
               .mean().reset_index())
    rows = []
    for key, grp in per_net.groupby(by, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        diff = improvement(grp["image"].to_numpy(float), grp["fused"].to_numpy(float))
        diff = np.atleast_1d(diff)
        diff = diff[np.isfinite(diff)]
        stat = p = np.nan
        if len(diff) >= 2 and np.all(diff == 0):
            stat, p = 0.0, 1.0
        elif len(diff) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy's small-sample and ties notes
                res = wilcoxon(diff) if test == "wilcoxon" else ttest_1samp(diff, 0.0)
            stat, p = float(res.statistic), float(res.pvalue)
        rows.append({**dict(zip(by, key, strict=True)), "n_networks": len(diff),
                     "mean_improvement": float(np.mean(diff)) if len(diff) else np.nan,
                     "median_improvement": float(np.median(diff)) if len(diff) else np.nan,
                     "statistic": stat, "p_value": p, "stars": stars(p), "test": test})
    return pd.DataFrame(rows)


def _macro_metrics(classes: np.ndarray, metrics: tuple[str, ...]
                   ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The bootstrap statistic: macro means of ``metrics`` (only AUROC: the fast path)."""
    from fusion_utils.evaluation.metrics import per_class_metrics

    if metrics == ("auroc",):
        return lambda y, p: np.array([macro_auroc(y, p, classes)])
    cols = list(metrics)

    def stat(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = per_class_metrics(y, p, classes, warn=False)[cols]
            return np.nanmean(table.to_numpy(float), axis=0)

    return stat


def bootstrap_macro_ci(y_true: Sequence, probas: Mapping[str, np.ndarray],
                       classes: Sequence[str], *, metrics: Sequence[str] = METRICS,
                       n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                       differences: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Stratified, paired, seeded percentile bootstrap intervals for macro-mean metrics.

    Parameters
    ----------
    y_true : sequence of str
        True classes of the test records.
    probas : mapping
        Model name -> probabilities (n, n_classes), columns in ``classes`` order.
    classes : sequence of str
    metrics : sequence of str
        Which of :data:`fusion_utils.evaluation.metrics.METRICS` (default: all nine); only
        ``("auroc",)`` is about ten times faster (no nine-metric table per resample).
    n_bootstrap : int
        Number of resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
    differences : sequence of (base, new), optional
        Also report ``new - base`` on the same resamples, as model ``"<new> - <base>"``.
        Default: ``("image", "fused")`` when both models are given, else none.

    Returns
    -------
    DataFrame
        ``metric, model, estimate, ci_low, ci_high, n_bootstrap``; the estimate is the value on
        the full test set.
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; choose from {list(METRICS)}")
    if differences is None:
        differences = [("image", "fused")] if {"image", "fused"} <= set(probas) else []
    stat = _macro_metrics(np.asarray(classes, dtype=str), metrics)
    out = bootstrap_intervals(y_true, probas, stat, names=metrics, n_bootstrap=n_bootstrap,
                              seed=seed, level=level, differences=differences)
    return out.rename(columns={"statistic": "metric"})[
        ["metric", "model", "estimate", "ci_low", "ci_high", "n_bootstrap"]]
