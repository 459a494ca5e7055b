"""DeLong's paired test (fast algorithm), the test across networks and the stratified bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from fusion_utils.evaluation.metrics import one_vs_rest_auroc
from fusion_utils.evaluation.significance import (
    across_networks_test,
    bootstrap_macro_ci,
    classwise_delong,
    delong_test,
    delong_variance,
    stars,
)


def fast_auc(y, score):
    """The package's AUROC of a binary problem (one-vs-rest with two columns)."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    return one_vs_rest_auroc(np.where(y, "p", "n"), np.c_[-s, s], ["n", "p"])[1]


def _brute_force_delong(y, a, b):
    """DeLong et al. (1988) structural components written with the O(mn) kernel psi."""
    y = np.asarray(y, bool)

    def components(s):
        X, Y = s[y], s[~y]
        psi = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (ta, v10a, v01a), (tb, v10b, v01b) = components(a), components(b)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    S = s10 / y.sum() + s01 / (~y).sum()
    return ta, tb, np.sqrt(S[0, 0] + S[1, 1] - 2 * S[0, 1])


def _paired_scores(n=150, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    a = rng.normal(size=n) + 0.8 * y
    b = a + rng.normal(scale=0.7, size=n) + 0.5 * y
    return y, np.round(a, 1), np.round(b, 1)  # rounding creates ties


def test_hanley_mcneil_1982_worked_example():
    """Hanley & McNeil (1982), Radiology 143:29-36, Table 1: CT ratings of 109 patients.

    Ratings 1 (definitely normal) .. 5 (definitely abnormal); 58 normal: 33, 6, 6, 11, 2;
    51 abnormal: 3, 2, 2, 11, 33. Published area 0.893 with standard error 0.032 (their
    approximation); DeLong's nonparametric SE on the same table is close to it.
    """
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    y = np.r_[np.zeros(58, bool), np.ones(51, bool)]
    s = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    auc, var = delong_variance(y, s)
    assert auc == pytest.approx(0.893, abs=5e-4)
    assert np.sqrt(var) == pytest.approx(0.032, abs=0.002)


def test_tiny_example_by_hand():
    # positives 0.9, 0.6; negatives 0.7, 0.2, 0.6
    # psi(0.9, .) = 1, 1, 1 ; psi(0.6, .) = 0, 1, 0.5  -> AUC = 4.5 / 6 = 0.75
    # V10 = [1, 0.5] ; V01 = [0.5, 1, 0.75]
    # Var = var(V10)/2 + var(V01)/3 = 0.125/2 + 0.0625/3
    y = np.array([1, 1, 0, 0, 0], bool)
    s = np.array([0.9, 0.6, 0.7, 0.2, 0.6])
    auc, var = delong_variance(y, s)
    assert auc == pytest.approx(0.75)
    assert var == pytest.approx(0.125 / 2 + 0.0625 / 3)


def test_fast_equals_brute_force_delong_and_sklearn_auc():
    y, a, b = _paired_scores()
    r = delong_test(y, a, b)
    ta, tb, se = _brute_force_delong(y, a, b)
    assert r.auc_a == pytest.approx(ta) and r.auc_b == pytest.approx(tb)
    assert r.auc_a == pytest.approx(roc_auc_score(y, a))
    assert fast_auc(y, b) == pytest.approx(roc_auc_score(y, b))
    assert r.se == pytest.approx(se)
    assert r.diff == pytest.approx(tb - ta) and r.z == pytest.approx((tb - ta) / se)


def test_delong_se_matches_paired_bootstrap():
    y, a, b = _paired_scores(n=300, seed=1)
    r = delong_test(y, a, b)
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    diffs = []
    for _ in range(800):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        diffs.append(fast_auc(y[idx], b[idx]) - fast_auc(y[idx], a[idx]))
    assert r.se == pytest.approx(np.std(diffs), rel=0.15)


def test_identical_classifiers_and_symmetry():
    y, a, b = _paired_scores()
    same = delong_test(y, a, a)
    assert same.z == 0 and same.p_value == 1.0
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert ab.z == pytest.approx(-ba.z) and ab.p_value == pytest.approx(ba.p_value)
    with pytest.raises(ValueError, match="positive and one negative"):
        delong_test(np.ones(5, bool), a[:5], b[:5])


def test_stars():
    assert [stars(p) for p in (0.01, 0.05, 0.0500001, 0.10, 0.2, float("nan"), None)] == \
        ["**", "**", "*", "*", "", "", ""]


def test_classwise_delong_frame_and_absent_class():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    y = rng.choice(["a", "b"], 120)  # 'c' absent
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    img = rng.dirichlet(np.ones(3), 120) + 0.3 * onehot
    fused = img + 0.5 * onehot
    with pytest.warns(UserWarning, match="'c'"):
        sig = classwise_delong(y, img, fused, classes)
    assert list(sig.columns) == ["class", "auc_image", "auc_fused", "diff", "se", "z", "p_value",
                                 "stars"]
    assert sig.loc[0, "diff"] == pytest.approx(sig.loc[0, "auc_fused"] - sig.loc[0, "auc_image"])
    assert np.isnan(sig.loc[2, "p_value"]) and sig.loc[2, "stars"] == ""


def test_bootstrap_ci_seeded_stratified_and_covers_estimate():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    y = rng.choice(classes, 90)
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    img = rng.dirichlet(np.ones(3), 90) + 0.2 * onehot
    fused = img + 0.4 * onehot
    probas = {"image": img, "fused": fused}
    ci = bootstrap_macro_ci(y, probas, classes, n_bootstrap=60, seed=3)
    again = bootstrap_macro_ci(y, probas, classes, n_bootstrap=60, seed=3)
    np.testing.assert_array_equal(ci[["ci_low", "ci_high"]].to_numpy(),
                                  again[["ci_low", "ci_high"]].to_numpy())
    assert set(ci["model"]) == {"image", "fused", "fused - image"}
    assert (ci["ci_low"] <= ci["ci_high"]).all()
    acc = ci[(ci["metric"] == "accuracy") & (ci["model"] == "fused - image")].iloc[0]
    assert acc["ci_low"] <= acc["estimate"] <= acc["ci_high"]
    # stratified: every class keeps its records in every resample, so a constant predictor has
    # macro sensitivity exactly (1 + 0 + 0) / 3 each time
    const = np.tile([1.0, 0.0, 0.0], (90, 1))
    ci_c = bootstrap_macro_ci(y, {"image": const}, classes, n_bootstrap=20, seed=0)
    sens = ci_c[ci_c["metric"] == "sensitivity"].iloc[0]
    assert sens["ci_low"] == pytest.approx(1 / 3) and sens["ci_high"] == pytest.approx(1 / 3)


def test_bootstrap_auroc_only_equals_nine_metric_auroc_and_is_paired():
    """The fast AUROC path draws the same resamples as the nine-metric path; identical models
    give a difference of exactly zero in every resample."""
    rng = np.random.default_rng(4)
    classes = ["a", "b", "c"]
    y = rng.choice(classes, 150)
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    pa = rng.dirichlet(np.ones(3), 150) + 0.2 * onehot
    pb = pa + 0.3 * onehot
    fast = bootstrap_macro_ci(y, {"a": pa, "b": pb}, classes, metrics=("auroc",),
                              n_bootstrap=40, seed=5, differences=[("a", "b")])
    full = bootstrap_macro_ci(y, {"a": pa, "b": pb}, classes, n_bootstrap=40, seed=5,
                              differences=[("a", "b")])
    full = full[full["metric"] == "auroc"].reset_index(drop=True)
    pd.testing.assert_frame_equal(fast, full, check_exact=False, atol=1e-12)
    assert fast.set_index("model").loc["b - a", "ci_low"] > 0
    same = bootstrap_macro_ci(y, {"a": pa, "b": pa.copy()}, classes, metrics=("auroc",),
                              n_bootstrap=20, differences=[("a", "b")]).set_index("model")
    assert same.loc["b - a", ["estimate", "ci_low", "ci_high"]].tolist() == [0.0, 0.0, 0.0]


def _classwise(diffs: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (mode, cls), values in diffs.items():
        for j, d in enumerate(values):
            rows.append({"dataset": "ptbxl", "mode": mode, "augment": False, "class": cls,
                         "backbone": f"net{j}", "image": 0.8, "fused": 0.8 + d})
    return pd.DataFrame(rows)


def test_across_networks_wilcoxon_known_answers():
    # eight networks all better: exact two-sided signed-rank p = 2 / 2**8 = 0.0078125
    up = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]
    # five networks, signs +,+,+,+,- with ranks 1..5, negative the smallest: W- = 1;
    # exact two-sided p = 2 * P(W- <= 1) = 2 * 2 / 32 = 0.125
    mixed = [-0.01, 0.02, 0.03, 0.04, 0.05]
    table = _classwise({("ft", "MI"): up, ("ft", "CD"): mixed, ("bn", "MI"): [0.0] * 3,
                        ("bn", "CD"): [0.05]})
    res = across_networks_test(table).set_index(["mode", "class"])
    assert res.loc[("ft", "MI"), "p_value"] == pytest.approx(2 / 256)
    assert res.loc[("ft", "MI"), "stars"] == "**" and res.loc[("ft", "MI"), "n_networks"] == 8
    assert res.loc[("ft", "MI"), "median_improvement"] == pytest.approx(4.5)
    assert res.loc[("ft", "CD"), "p_value"] == pytest.approx(0.125)
    assert res.loc[("ft", "CD"), "statistic"] == pytest.approx(1.0)
    assert res.loc[("bn", "MI"), "p_value"] == 1.0  # no change in any network
    assert np.isnan(res.loc[("bn", "CD"), "p_value"]) and res.loc[("bn", "CD"), "stars"] == ""


def test_across_networks_ttest_and_seed_averaging():
    d = [0.01, 0.03, 0.02, 0.06]
    table = _classwise({("ft", "MI"): d})
    # a second seed of net0 with +0.03: net0's difference becomes the mean, 0.02
    table = pd.concat([table, table.iloc[[0]].assign(fused=0.83)], ignore_index=True)
    res = across_networks_test(table, test="ttest").iloc[0]
    ref = stats.ttest_1samp(100 * np.array([0.02, 0.03, 0.02, 0.06]), 0.0)
    assert res["n_networks"] == 4 and res["p_value"] == pytest.approx(ref.pvalue)
    assert res["test"] == "ttest"
    with pytest.raises(ValueError, match="test='anova'"):
        across_networks_test(table, test="anova")
    with pytest.raises(ValueError, match="backbone"):
        across_networks_test(table.drop(columns="backbone"))
