"""The nine one-vs-rest metrics against scikit-learn and a hand-computed confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from fusion_utils.evaluation.metrics import (
    METRICS,
    UndefinedMetricWarning,
    classification_report_table,
    compare_models,
    improvement,
    improvement_table,
    macro_auroc,
    macro_summary,
    one_vs_rest_auroc,
    one_vs_rest_counts,
    per_class_metrics,
    relative_change,
)

CLASSES = ["a", "b", "c"]


def _onehot_proba(pred, classes=CLASSES, rng=None):
    """Probabilities whose argmax is ``pred`` (with some spread for the AUROC)."""
    rng = rng or np.random.default_rng(0)
    P = rng.uniform(0, 0.3, (len(pred), len(classes)))
    P[np.arange(len(pred)), [classes.index(p) for p in pred]] += 1.0
    return P / P.sum(axis=1, keepdims=True)


def test_hand_computed_confusion_matrix():
    # true a a a a b b b c c c ; predicted a a a b b b c c c a
    y = list("aaaabbbccc")
    pred = list("aaabbbccca")
    counts = one_vs_rest_counts(y, pred, CLASSES)
    # class a: TP 3, FP 1 (the last c), FN 1, TN 5
    assert counts.loc["a"].tolist() == [3, 1, 1, 5]
    table = per_class_metrics(y, _onehot_proba(pred), CLASSES)
    a = table.loc["a"]
    assert a["accuracy"] == pytest.approx(8 / 10)
    assert a["sensitivity"] == pytest.approx(3 / 4)
    assert a["specificity"] == pytest.approx(5 / 6)
    assert a["precision"] == pytest.approx(3 / 4)
    assert a["f1"] == pytest.approx(0.75)
    assert a["informedness"] == pytest.approx(3 / 4 + 5 / 6 - 1)
    assert a["markedness"] == pytest.approx(3 / 4 + 5 / 6 - 1)  # NPV = 5/6
    assert a["mcc"] == pytest.approx((3 * 5 - 1 * 1) / np.sqrt(4 * 4 * 6 * 6))


def test_every_metric_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.choice(CLASSES, 300)
    P = rng.dirichlet(np.ones(3), 300)
    P[np.arange(300), [CLASSES.index(c) for c in y]] += rng.uniform(0, 0.6, 300)
    P /= P.sum(axis=1, keepdims=True)
    pred = np.array(CLASSES)[P.argmax(axis=1)]
    table = per_class_metrics(y, P, CLASSES)
    for k, c in enumerate(CLASSES):
        t, p = y == c, pred == c
        row = table.loc[c]
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
        assert row["sensitivity"] == pytest.approx(skm.recall_score(t, p))
        assert row["specificity"] == pytest.approx(skm.recall_score(~t, ~p))
        assert row["precision"] == pytest.approx(skm.precision_score(t, p))
        assert row["f1"] == pytest.approx(skm.f1_score(t, p))
        assert row["informedness"] == pytest.approx(
            2 * skm.balanced_accuracy_score(t, p) - 1)
        npv = skm.precision_score(~t, ~p)
        assert row["markedness"] == pytest.approx(skm.precision_score(t, p) + npv - 1)
        assert row["mcc"] == pytest.approx(skm.matthews_corrcoef(t, p))
        assert row["auroc"] == pytest.approx(skm.roc_auc_score(t, P[:, k]))
    # macro sensitivity equals sklearn's macro recall
    assert table["sensitivity"].mean() == pytest.approx(skm.recall_score(y, pred, average="macro"))


def test_tidy_table_has_macro_rows():
    y = list("aaaabbbccc")
    tidy = classification_report_table(y, _onehot_proba(list("aaabbbccca")), CLASSES)
    assert list(tidy.columns) == ["metric", "class", "value"]
    assert list(dict.fromkeys(tidy["metric"])) == list(METRICS)
    assert set(tidy["class"]) == {*CLASSES, "macro_mean", "macro_std"}
    wide = tidy.pivot(index="class", columns="metric", values="value")
    assert wide.loc["macro_mean", "f1"] == pytest.approx(wide.loc[CLASSES, "f1"].mean())
    assert wide.loc["macro_std", "f1"] == pytest.approx(wide.loc[CLASSES, "f1"].std(ddof=1))


def test_macro_std_is_matlabs_std_with_n_minus_1():
    """MATLAB: std([0.5 0.7 0.9]) = 0.2 (N - 1 = 2 in the denominator; N would give 0.1633)."""
    per_class = pd.DataFrame({"f1": [0.5, 0.7, 0.9], "mcc": [0.2, np.nan, 0.6],
                              "auroc": [0.8, np.nan, np.nan]}, index=CLASSES)
    macro = macro_summary(per_class)
    assert macro.loc["macro_mean", "f1"] == pytest.approx(0.7)
    assert macro.loc["macro_std", "f1"] == pytest.approx(0.2)
    # NaN classes skipped: std([0.2 0.6]) = sqrt(0.08) = 0.28284...
    assert macro.loc["macro_std", "mcc"] == pytest.approx(np.sqrt(0.08))
    # one defined class: MATLAB's std of one value is 0, but the spread across classes is
    # undefined; NaN, as the metric table marks what it cannot compute
    assert np.isnan(macro.loc["macro_std", "auroc"])


def test_one_vs_rest_auroc_equals_sklearn_with_ties_and_absent_class():
    rng = np.random.default_rng(3)
    y = np.array(CLASSES)[rng.integers(0, 3, 400)]
    p = rng.dirichlet(np.ones(3), 400)
    p[:, 0] = np.round(p[:, 0], 1)  # ties
    p /= p.sum(1, keepdims=True)
    ours = one_vs_rest_auroc(y, p, CLASSES)
    for k, c in enumerate(CLASSES):
        assert ours[k] == pytest.approx(skm.roc_auc_score(y == c, p[:, k]), abs=1e-12)
    ref = skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=CLASSES)
    assert macro_auroc(y, p, CLASSES) == pytest.approx(ref, abs=1e-12)
    # hand example: positives 0.9, 0.6; negatives 0.7, 0.2, 0.6 -> (3 + 1.5) / 6 = 0.75
    two = np.array([[0.1, 0.9], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2], [0.4, 0.6]])
    assert one_vs_rest_auroc(list("bbaaa"), two, ["a", "b"])[1] == pytest.approx(0.75)
    # a class absent from y is NaN and left out of the macro mean
    vals = one_vs_rest_auroc(y[y != "c"], p[y != "c"], CLASSES)
    assert np.isnan(vals[2]) and np.isfinite(vals[:2]).all()
    assert macro_auroc(y[y != "c"], p[y != "c"], CLASSES) == pytest.approx(np.mean(vals[:2]))


def test_undefined_cases_are_nan_with_warning():
    y = list("aaabbb")  # class c absent from the test set
    proba = _onehot_proba(list("aaabbb"))  # and never predicted
    with pytest.warns(UndefinedMetricWarning, match="'c'"):
        table = per_class_metrics(y, proba, CLASSES)
    assert np.isnan(table.loc["c", "sensitivity"]) and np.isnan(table.loc["c", "auroc"])
    assert np.isnan(table.loc["c", "precision"]) and np.isnan(table.loc["c", "mcc"])
    assert table.loc["c", "specificity"] == 1.0
    with pytest.warns(UndefinedMetricWarning):
        tidy = classification_report_table(y, proba, CLASSES)
    macro = tidy[(tidy["class"] == "macro_mean") & (tidy["metric"] == "sensitivity")]["value"]
    assert macro.item() == pytest.approx(1.0)  # NaN skipped


def test_input_validation():
    with pytest.raises(ValueError, match="shape"):
        per_class_metrics(list("ab"), np.ones((2, 2)), CLASSES)
    with pytest.raises(ValueError, match="not in classes"):
        per_class_metrics(list("az"), np.ones((2, 3)), CLASSES)


def test_improvement_sign_and_units():
    assert improvement(0.70, 0.80) == pytest.approx(10.0)  # the paper's example
    assert improvement(0.80, 0.70) == pytest.approx(-10.0)  # degradation is negative
    assert relative_change(0.70, 0.80) == pytest.approx(0.1 / 0.7)
    assert np.isnan(relative_change(0.0, 0.5))
    np.testing.assert_allclose(improvement(np.array([0.5, 0.9]), np.array([0.6, 0.8])), [10, -10])


def test_compare_models_and_improvement_table():
    y = list("aaaabbbccc")
    tidy = compare_models(y, {"image": _onehot_proba(list("aaabbbccca")),
                              "fused": _onehot_proba(list("aaaabbbccc"))}, CLASSES)
    assert list(tidy.columns) == ["metric", "class", "model", "value"]
    wide = improvement_table(tidy)
    acc = wide[(wide["metric"] == "accuracy") & (wide["class"] == "macro_mean")].iloc[0]
    assert acc["fused"] == 1.0
    assert acc["improvement"] == pytest.approx(100 * (1.0 - acc["image"]))
    assert isinstance(wide, pd.DataFrame)
