"""Tests of fusion_utils.interpret: weight blocks, standardised weights, importance, ablation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fusion_utils import interpret as I

CLASSES = np.array(["a", "b", "c"])


def _toy(n: int = 900, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping classes: x0, x1 informative, x2 pure noise (non-separable)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0], [1.2, 0.3], [0.2, 1.4]])
    X = np.column_stack([centers[y] + rng.normal(size=(n, 2)), rng.normal(size=n)])
    return X, CLASSES[y]


def _softmax(**kw):
    from fusion_utils.fusion.softmax import SoftmaxClassifier

    return SoftmaxClassifier(**kw)


# --------------------------------------------------------------------------------------------
# blocks


def test_split_blocks_follows_column_names():
    names = ["img.0000", "age", "img.0001", "recording_date.year", "img.0002", "sex"]
    coef = np.arange(18, dtype=float).reshape(3, 6)
    b = I.split_blocks(coef, names, CLASSES)
    assert b.image_names.tolist() == ["img.0000", "img.0001", "img.0002"]
    assert b.meta_names.tolist() == ["age", "recording_date.year", "sex"]
    np.testing.assert_array_equal(b.image, coef[:, [0, 2, 4]])
    np.testing.assert_array_equal(b.meta, coef[:, [1, 3, 5]])
    assert I.image_mask(names).tolist() == [True, False, True, False, True, False]


def test_split_blocks_rejects_wrong_shape():
    with pytest.raises(ValueError, match="expected"):
        I.split_blocks(np.zeros((3, 4)), ["img.0", "age"], CLASSES)


def test_feature_groups_and_source_column():
    names = ["img.0000", "meta.age", "recording_date.year", "recording_date.month",
             "localization=back", "sex"]
    assert I.feature_groups(names) == {"age": [1], "recording_date": [2, 3],
                                       "localization": [4], "sex": [5]}
    # explicit columns: a raw name containing a dot is matched as a whole (longest match)
    assert I.source_column("site.code.x", ["site", "site.code"]) == "site.code"
    with pytest.raises(KeyError, match="matches none"):
        I.source_column("weight", ["age", "sex"])


def test_weights_frame_and_scale_table_known_values():
    names = np.array(["img.0000", "img.0001", "age"])
    img = I.ClassifierWeights(coef=np.array([[1.0, -2.0], [3.0, -4.0], [0.5, 0.5]]),
                              intercept=np.zeros(3), feature_names=names[:2], classes=CLASSES)
    fused = I.ClassifierWeights(coef=np.array([[0.01, -0.02, 5.0], [0.03, -0.04, -6.0],
                                               [0.005, 0.005, 1.0]]),
                                intercept=np.zeros(3), feature_names=names, classes=CLASSES,
                                feature_std=np.array([1.0, 1.0, 10.0]))
    wf = I.weights_frame(fused, "fused")
    assert len(wf) == 9 and set(wf["block"]) == {"image", "metadata"}
    age = wf[wf["feature"] == "age"].set_index("class")
    np.testing.assert_allclose(age["weight"], [5.0, -6.0, 1.0])
    np.testing.assert_allclose(age["std_weight"], [50.0, -60.0, 10.0])
    t = I.weight_scale_table(img, fused).set_index("class")
    np.testing.assert_allclose(t.loc["a", "ratio"], 100.0)
    np.testing.assert_allclose(t.loc["all", "orders_of_magnitude"], 2.0)
    np.testing.assert_allclose(t.loc["all", "median_abs_image_only"], np.median([1, 2, 3, 4, .5, .5]))
    bs = I.block_summary({"fused": fused}).set_index("block")
    assert bs.loc["metadata", "median_abs_std_weight"] == pytest.approx(50.0)


def test_classifier_weights_round_trip_and_predict(tmp_path):
    X, y = _toy(300)
    est = LogisticRegression(max_iter=1000).fit(X, y)
    w = I.ClassifierWeights.from_estimator(est, ["img.0000", "img.0001", "noise"], X)
    path = w.save(tmp_path / "classifier_fused.npz")
    back = I.ClassifierWeights.load(path)
    np.testing.assert_array_equal(back.coef, w.coef)
    assert back.feature_names.tolist() == ["img.0000", "img.0001", "noise"]
    np.testing.assert_allclose(back.feature_std, X.std(axis=0))
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X), atol=1e-10)
    with pytest.raises(FileNotFoundError, match="notebook 04"):
        I.ClassifierWeights.load(tmp_path / "missing.npz")


# --------------------------------------------------------------------------------------------
# standardised weights


def test_standardised_weights_invariant_to_rescaling_a_feature():
    X, y = _toy(900, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # must converge: the invariance holds at the optimum
        base = _softmax(max_epochs=2000, tol=1e-9).fit(X, y)
        Xs = X.copy()
        Xs[:, 0] *= 1000.0
        scaled = _softmax(max_epochs=2000, tol=1e-9).fit(Xs, y)
    w0 = I.ClassifierWeights.from_estimator(base, ["a", "b", "c"], X)
    w1 = I.ClassifierWeights.from_estimator(scaled, ["a", "b", "c"], Xs)
    np.testing.assert_allclose(w1.coef[:, 0], w0.coef[:, 0] / 1000.0, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(w1.standardised, w0.standardised, rtol=1e-4, atol=1e-7)
    # the raw weight did change a lot; the standardised one did not
    assert np.abs(w1.coef[:, 0]).max() < np.abs(w0.coef[:, 0]).max() / 500


def test_standardised_weights_validates_shape():
    with pytest.raises(ValueError, match="one standard deviation per column"):
        I.standardised_weights(np.zeros((2, 3)), np.ones(2))


# --------------------------------------------------------------------------------------------
# AUROC, permutation importance, ablation


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


def test_reading_comparison_ranks():
    fused = I.ClassifierWeights(
        coef=np.array([[0.1, 5.0, 0.01, 0.02], [0.1, -5.0, 0.0, 0.01], [0.1, 1.0, 0.0, 0.0]]),
        intercept=np.zeros(3), classes=CLASSES,
        feature_names=np.array(["img.0000", "sex", "age", "recording_date.year"]),
        feature_std=np.array([1.0, 0.5, 1000.0, 10.0]))
    perm = pd.DataFrame({"feature": ["age", "sex", "recording_date"],
                         "importance_mean": [0.2, 0.01, 0.05]})
    rc = I.reading_comparison(fused, perm)
    assert rc.loc["sex", "rank_mean_abs_weight"] == 1
    assert rc.loc["age", "rank_mean_abs_std_weight"] == 1
    assert rc.loc["age", "rank_permutation_importance"] == 1


# --------------------------------------------------------------------------------------------
# run folders and column sets


def test_load_run_and_find_runs(tmp_path):
    from fusion_utils.run_folder import RunFolder

    run = tmp_path / "runs" / "ptbxl-x-ft-aug"
    img = I.ClassifierWeights(np.ones((3, 2)), np.zeros(3), np.array(["img.0000", "img.0001"]),
                              CLASSES)
    fused = I.ClassifierWeights(np.ones((3, 3)), np.zeros(3),
                                np.array(["img.0000", "img.0001", "age"]), CLASSES)
    img.save(run / "classifier_image.npz")
    fused.save(run / "classifier_fused.npz")
    RunFolder(run).record("features", {"backbone": "vgg16", "mode": "ft", "augment": True})
    other = tmp_path / "runs" / "ham"
    I.ClassifierWeights(np.ones((2, 1)), np.zeros(2), np.array(["age"]),
                        np.array(["nv", "mel"])).save(other / "classifier_fused.npz")
    assert I.find_runs(tmp_path / "runs") == [other, run]
    assert I.find_runs(tmp_path / "runs", classes=CLASSES) == [run]
    rw = I.load_run(run)
    assert rw.label == "vgg16 FT aug"
    assert rw.fused.blocks.meta_names.tolist() == ["age"]
    assert I.find_runs(tmp_path / "nothing") == []
    # run.json stores the augmentation as None (without) or as its description (with)
    for aug, expected in ((None, "noaug"), ({"max_shift": 30}, "aug"), (False, "noaug")):
        RunFolder(run).record("features", {"backbone": "vgg16", "mode": "bn", "augment": aug})
        rw = I.load_run(run)
        assert rw.label == f"vgg16 BN {expected}" and rw.augmented == (expected == "aug")


def test_parse_column_sets():
    assert I.parse_column_sets("", "ptbxl") == I.DEFAULT_COLUMN_SETS["ptbxl"]
    assert I.parse_column_sets("p=meta.age, sex", "ham10000") == {"p": ("age", "sex")}
    assert I.parse_column_sets("p:age;q:sex", "ptbxl") == {"p": ("age",), "q": ("sex",)}
    with pytest.raises(ValueError, match="name=col1"):
        I.parse_column_sets("age,sex", "ptbxl")


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
