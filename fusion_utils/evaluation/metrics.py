"""The paper's nine one-vs-rest metrics (Sec. II.C), macro mean and std, and the improvement.

Per class ``k`` the multi-class problem is read as "class k vs the rest": the predicted class is
the most probable one, and ``TP, FP, FN, TN`` count records by (true == k, predicted == k). Then

============  ======================================  ==========================================
accuracy      (TP + TN) / N                           ``sklearn.metrics.accuracy_score`` (binary)
specificity   TN / (TN + FP)                          recall of the negative class
sensitivity   TP / (TP + FN)                          ``recall_score``
precision     TP / (TP + FP)                          ``precision_score``
f1            2 TP / (2 TP + FP + FN)                 ``f1_score``
informedness  sensitivity + specificity - 1           Youden's J
markedness    precision + NPV - 1                     NPV = TN / (TN + FN)
mcc           (TP TN - FP FN) / sqrt(...)             ``matthews_corrcoef``
auroc         area under the ROC of ``proba[:, k]``   ``roc_auc_score`` (:func:`one_vs_rest_auroc`)
============  ======================================  ==========================================

The counts are computed once from the confusion matrix (the tests check every metric against
scikit-learn). A metric whose denominator is zero (a class absent from the test set, a class never
predicted) is NaN with a :class:`UndefinedMetricWarning`; macro mean and std skip NaNs. The
standard deviation across classes is MATLAB's ``std``: the sample standard deviation with
``N - 1`` in the denominator (``ddof=1``), over the classes whose value is defined.

The one-vs-rest AUROC of the whole package is :func:`one_vs_rest_auroc` (the nine-metric table,
the bootstrap, permutation importance and the ROC figure all call it). It is the Mann-Whitney
statistic from **mid-ranks** (tied scores share their mean rank), which equals
``sklearn.metrics.roc_auc_score`` per class (the tests check it with ties). It is written out
rather than calling ``roc_auc_score`` once per class for two reasons: one ranking of all the
probability columns serves every class, which the bootstrap and permutation loops need (they call
it thousands of times), and DeLong's test (:mod:`fusion_utils.evaluation.significance`) needs the
same mid-ranks (:func:`midranks`) for its structural components.

Values are fractions in [0, 1] (MCC, informedness, markedness in [-1, 1]). The paper's
improvement is a difference in percentage points: 70% -> 80% is +10 (:func:`improvement`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import confusion_matrix

__all__ = [
    "METRICS",
    "UndefinedMetricWarning",
    "classification_report_table",
    "compare_models",
    "improvement",
    "improvement_table",
    "macro_auroc",
    "macro_summary",
    "midranks",
    "one_vs_rest_auroc",
    "one_vs_rest_counts",
    "per_class_metrics",
    "relative_change",
]

METRICS: tuple[str, ...] = ("accuracy", "specificity", "sensitivity", "precision", "f1",
                            "informedness", "markedness", "mcc", "auroc")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a class (zero denominator); its value is NaN."""


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _labels_and_proba(y_true: Sequence, proba: np.ndarray, classes: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from fusion_utils.errors import MetricInputError  # entry-point validation (issue 15)

    classes = np.asarray(classes, dtype=str)
    missing = pd.isna(pd.Series(np.asarray(y_true, dtype=object).ravel()))
    if missing.any():
        raise MetricInputError(f"y_true has {int(missing.sum())} missing label(s) (None/NaN) at "
                               f"row(s) {np.flatnonzero(missing)[:5].tolist()}; drop those rows")
    y = np.asarray(y_true).astype(str)
    try:
        proba = np.asarray(proba, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MetricInputError(f"proba must hold numbers (class probabilities), got "
                               f"{type(proba).__name__} that does not convert: {exc}") from exc
    if proba.ndim != 2 or proba.shape != (len(y), len(classes)):
        raise MetricInputError(f"proba has shape {proba.shape}; expected (n={len(y)}, "
                               f"classes={len(classes)}) with columns in the order "
                               f"{list(classes)}")
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        raise MetricInputError(f"proba has NaN or infinite values in {int(bad.sum())} row(s) "
                               f"(e.g. rows {np.flatnonzero(bad)[:5].tolist()}); a classifier "
                               "that produced them failed: check its inputs")
    unknown = sorted(str(u) for u in set(y) - set(classes))
    if unknown:
        raise MetricInputError(f"y_true has label(s) {unknown} not in classes {list(classes)}")
    return y, proba, classes


def midranks(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """Ranks 1..n of ``scores`` along ``axis``; tied values share their mean rank.

    The one ranking behind every AUROC of the package (:func:`one_vs_rest_auroc` and DeLong's
    structural components); ``scipy.stats.rankdata(method="average")``.
    """
    return rankdata(np.asarray(scores, dtype=float), method="average", axis=axis)


def one_vs_rest_auroc(y_true: Sequence, proba: np.ndarray, classes: Sequence[str]
                      ) -> np.ndarray:
    """One-vs-rest AUROC per class, in ``classes`` order (NaN for a class without positives or
    without negatives in ``y_true``).

    The Mann-Whitney statistic ``(R_k - m (m + 1) / 2) / (m n)``, with ``R_k`` the sum of the
    mid-ranks (:func:`midranks`) of the ``m`` positives' scores ``proba[:, k]`` among all ``m + n``
    records; equal to ``sklearn.metrics.roc_auc_score(y_true == k, proba[:, k])``. A bootstrap
    resample that misses a rare class gives NaN for that class rather than an exception.

    Parameters
    ----------
    y_true : sequence of str
        True class names.
    proba : ndarray (n, n_classes)
        Scores (probabilities), columns in ``classes`` order.
    classes : sequence of str
        Class order.
    """
    y, proba, classes = _labels_and_proba(y_true, proba, classes)
    ranks = midranks(proba, axis=0)
    out = np.full(len(classes), np.nan)
    for k, cls in enumerate(classes):
        pos = y == cls
        m = int(pos.sum())
        n = len(y) - m
        if m and n:
            out[k] = (ranks[pos, k].sum() - m * (m + 1) / 2.0) / (m * n)
    return out


def macro_auroc(y_true: Sequence, proba: np.ndarray, classes: Sequence[str]) -> float:
    """Macro mean of :func:`one_vs_rest_auroc` over the classes present in ``y_true``."""
    vals = one_vs_rest_auroc(y_true, proba, classes)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def one_vs_rest_counts(y_true: Sequence, y_pred: Sequence, classes: Sequence[str]) -> pd.DataFrame:
    """TP, FP, FN, TN per class (rows in ``classes`` order) from the confusion matrix."""
    classes = np.asarray(classes, dtype=str)
    cm = confusion_matrix(np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str),
                          labels=classes)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return pd.DataFrame({"tp": tp, "fp": fp, "fn": fn, "tn": tn}, index=pd.Index(classes,
                                                                                  name="class"))


def per_class_metrics(y_true: Sequence, proba: np.ndarray, classes: Sequence[str],
                      warn: bool = True) -> pd.DataFrame:
    """The nine metrics per class (rows: classes, columns: :data:`METRICS`).

    Parameters
    ----------
    y_true : sequence of str
        True class names.
    proba : ndarray (n, n_classes)
        Predicted probabilities, columns in ``classes`` order. The predicted class is the argmax.
    classes : sequence of str
        Class order.
    warn : bool
        Emit :class:`UndefinedMetricWarning` for NaN values.
    """
    y, proba, classes = _labels_and_proba(y_true, proba, classes)
    pred = classes[np.argmax(proba, axis=1)]
    c = one_vs_rest_counts(y, pred, classes)
    tp, fp, fn, tn = (c[k].to_numpy() for k in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    sens = _div(tp, tp + fn)
    spec = _div(tn, tn + fp)
    prec = _div(tp, tp + fp)
    npv = _div(tn, tn + fn)
    mcc_den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    table = pd.DataFrame({
        "accuracy": _div(tp + tn, n),
        "specificity": spec,
        "sensitivity": sens,
        "precision": prec,
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "informedness": sens + spec - 1,
        "markedness": prec + npv - 1,
        "mcc": _div(tp * tn - fp * fn, mcc_den),
    }, index=pd.Index(classes, name="class"))
    table["auroc"] = one_vs_rest_auroc(y, proba, classes)
    if warn and table.isna().to_numpy().any():
        bad = {m: list(table.index[table[m].isna()]) for m in table.columns
               if table[m].isna().any()}
        warnings.warn(f"undefined metrics (zero denominator: class absent from y_true or never "
                      f"predicted) set to NaN: {bad}", UndefinedMetricWarning, stacklevel=2)
    return table


def macro_summary(per_class: pd.DataFrame) -> pd.DataFrame:
    """Rows ``macro_mean`` and ``macro_std`` of a per-class table (NaN skipped).

    ``macro_std`` is MATLAB's ``std``: the sample standard deviation across classes, ``N - 1``
    in the denominator (``ddof=1``), NaN when fewer than two classes have a value.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        mean = np.nanmean(per_class.to_numpy(float), axis=0) if len(per_class) else np.nan
        std = np.nanstd(per_class.to_numpy(float), axis=0, ddof=1) if len(per_class) else np.nan
    return pd.DataFrame([mean, std], index=pd.Index(["macro_mean", "macro_std"], name="class"),
                        columns=per_class.columns)


def classification_report_table(y_true: Sequence, proba: np.ndarray, classes: Sequence[str],
                                warn: bool = True) -> pd.DataFrame:
    """Tidy table ``metric, class, value``: every class plus ``macro_mean`` and ``macro_std``."""
    per_class = per_class_metrics(y_true, proba, classes, warn=warn)
    full = pd.concat([per_class, macro_summary(per_class)])
    tidy = full.reset_index().melt(id_vars="class", var_name="metric", value_name="value")
    tidy["metric"] = pd.Categorical(tidy["metric"], categories=list(METRICS), ordered=True)
    tidy = tidy.sort_values(["metric"], kind="stable").reset_index(drop=True)
    tidy["metric"] = tidy["metric"].astype(str)
    return tidy[["metric", "class", "value"]]


def compare_models(y_true: Sequence, probas: dict[str, np.ndarray], classes: Sequence[str],
                   warn: bool = True) -> pd.DataFrame:
    """The tidy report table of several models: columns metric, class, model, value."""
    frames = [classification_report_table(y_true, p, classes, warn=warn).assign(model=name)
              for name, p in probas.items()]
    return pd.concat(frames, ignore_index=True)[["metric", "class", "model", "value"]]


def improvement(before: float | np.ndarray, after: float | np.ndarray) -> float | np.ndarray:
    """The paper's improvement in percentage points: ``100 * (after - before)``.

    ``before`` and ``after`` are fractions; 0.70 -> 0.80 gives +10 (Figs. 2-3). Positive means
    the fused model is better.
    """
    out = 100.0 * (np.asarray(after, float) - np.asarray(before, float))
    return out if out.ndim else float(out)


def relative_change(before: float | np.ndarray, after: float | np.ndarray) -> float | np.ndarray:
    """Relative change ``(after - before) / |before|`` (0.70 -> 0.80 gives +0.1429); NaN if 0."""
    b, a = np.asarray(before, float), np.asarray(after, float)
    out = _div(a - b, np.abs(b))
    return out if out.ndim else float(out)


def improvement_table(metrics: pd.DataFrame, base: str = "image", new: str = "fused"
                      ) -> pd.DataFrame:
    """Wide table from a tidy ``metric, class, model, value`` frame.

    Columns: ``metric``, ``class``, ``image``, ``fused``, ``improvement`` (percentage points) and
    ``relative_change``.
    """
    wide = metrics.pivot_table(index=["metric", "class"], columns="model", values="value",
                               aggfunc="first", dropna=False, sort=False).reset_index()
    wide.columns.name = None
    wide["improvement"] = improvement(wide[base].to_numpy(), wide[new].to_numpy())
    wide["relative_change"] = relative_change(wide[base].to_numpy(), wide[new].to_numpy())
    return wide

