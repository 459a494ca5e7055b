"""Grouped permutation importance and drop-column ablation (intervals: the evaluation bootstrap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fusion_utils import interpret as I

CLASSES = np.array(["a", "b", "c"])


def _leak_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    df = pd.DataFrame({"signal": y * 0.5 + rng.normal(size=n),
                       "noise": rng.normal(size=n),
                       "leak": y + rng.normal(scale=0.05, size=n)})
    return df, CLASSES[y]


def test_permutation_importance_noise_near_zero_leak_high():
    Xtr, ytr = _leak_data(600, 0)
    Xte, yte = _leak_data(600, 1)
    est = LogisticRegression(max_iter=2000).fit(Xtr.to_numpy(), ytr)
    imp = I.grouped_permutation_importance(est, Xte.to_numpy(), yte,
                                           {c: [j] for j, c in enumerate(Xte.columns)},
                                           n_repeats=5, seed=0).set_index("feature")
    assert imp.loc["leak", "importance_mean"] > 0.3
    assert abs(imp.loc["noise", "importance_mean"]) < 0.01
    assert imp.index[0] == "leak"  # sorted by decreasing importance
    assert imp["baseline"].iloc[0] > 0.95


def test_grouped_permutation_permutes_group_together():
    """Two copies of the leak: shuffled one at a time the other still carries the label,
    shuffled together (one group) the information is gone."""
    Xtr, ytr = _leak_data(600, 0)
    Xte, yte = _leak_data(600, 1)
    Xtr["leak2"], Xte["leak2"] = Xtr["leak"], Xte["leak"]
    est = LogisticRegression(max_iter=2000).fit(Xtr.to_numpy(), ytr)
    single = I.grouped_permutation_importance(est, Xte.to_numpy(), yte, {"leak": [2]},
                                              n_repeats=3)
    both = I.grouped_permutation_importance(est, Xte.to_numpy(), yte, {"leak": [2, 3]},
                                            n_repeats=3)
    assert both["importance_mean"].iloc[0] > single["importance_mean"].iloc[0] + 0.1
    assert both["n_columns"].iloc[0] == 2
    # a DataFrame with named groups gives the same numbers as the array with indices
    named = I.grouped_permutation_importance(est.fit(Xtr, ytr), Xte, yte,
                                             {"leak": ["leak", "leak2"]}, n_repeats=3)
    assert named["importance_mean"].iloc[0] == pytest.approx(both["importance_mean"].iloc[0])


def test_drop_column_ablation_leak_vs_noise():
    Xtr, ytr = _leak_data(500, 0)
    Xte, yte = _leak_data(500, 1)
    ab = I.drop_column_ablation(LogisticRegression(max_iter=2000), Xtr, ytr, Xte, yte,
                                n_bootstrap=50, seed=0).set_index("feature")
    assert ab.loc["leak", "delta"] > 0.1
    assert ab.loc["leak", "ci_low"] > 0  # the interval excludes zero
    assert abs(ab.loc["noise", "delta"]) < 0.01
    assert ab.loc["noise", "ci_low"] <= ab.loc["noise", "delta"] <= ab.loc["noise", "ci_high"]
    assert (ab["auroc_full"] == ab["auroc_full"].iloc[0]).all()


def test_permutation_importance_any_class_order_and_stored_weights():
    """Classes given in another order than estimator.classes_ are matched, not misread; the
    stored ClassifierWeights scores like the estimator it came from."""
    Xtr, ytr = _leak_data(400, 0)
    Xte, yte = _leak_data(400, 1)
    est = LogisticRegression(max_iter=2000).fit(Xtr.to_numpy(), ytr)
    a = I.grouped_permutation_importance(est, Xte.to_numpy(), yte, n_repeats=2)
    b = I.grouped_permutation_importance(est, Xte.to_numpy(), yte, classes=["c", "a", "b"],
                                         n_repeats=2)
    w = I.ClassifierWeights.from_estimator(est, ["signal", "noise", "leak"])
    c = I.grouped_permutation_importance(w, Xte.to_numpy(), yte, n_repeats=2)
    for other in (b, c):
        np.testing.assert_allclose(other["importance_mean"], a["importance_mean"], atol=1e-9)
        assert other["baseline"].iloc[0] == pytest.approx(a["baseline"].iloc[0])


def test_stored_weights_give_zero_probability_to_untrained_class():
    w = I.ClassifierWeights(coef=np.array([[1.0], [np.nan], [-1.0]]),
                            intercept=np.array([0.0, np.nan, 0.0]),
                            feature_names=np.array(["age"]), classes=CLASSES)
    p = w.predict_proba(np.array([[0.5], [-2.0]]))
    assert (p[:, 1] == 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
