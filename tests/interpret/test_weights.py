"""Classifier weights: blocks, standardised weights, scale tables, reading comparison."""

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
    np.testing.assert_allclose(t.loc["all", "median_abs_image_only"],
                               np.median([1, 2, 3, 4, .5, .5]))
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
