"""The one reader/writer of classifier files: round trips, class order, damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fusion_utils.errors import RunFolderError
from fusion_utils.fusion.classifier_io import (
    classifier_from_estimator,
    load_classifier,
    save_classifier,
)


def _fitted(classes=("b", "a", "c")):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.array(list(classes))[np.digitize(X[:, 0], [-0.4, 0.4])[: len(X)] % len(classes)]
    return LogisticRegression().fit(X, y), X


def test_rows_follow_the_dataset_class_order_and_unseen_classes_are_nan() -> None:
    model, X = _fitted(("b", "a"))  # fitted on two of the three classes
    model_rows = {c: k for k, c in enumerate(model.classes_)}
    names = ["img.0", "img.1", "meta.age"]
    w = classifier_from_estimator(model, names, ["a", "c", "b"], X)
    assert list(w.classes) == ["a", "c", "b"]
    # binary scikit-learn: one stored row, the logit of classes_[1] ("b") against classes_[0]
    assert model.coef_.shape == (1, 3) and model_rows == {"a": 0, "b": 1}
    np.testing.assert_array_equal(w.coef[0], np.zeros(3))
    np.testing.assert_array_equal(w.coef[2], model.coef_[0])
    assert np.isnan(w.coef[1]).all() and np.isnan(w.intercept[1])
    np.testing.assert_allclose(w.feature_std, X.std(axis=0))
    # the softmax rows give the estimator's own probabilities
    seen = [0, 2]
    logits = X @ w.coef[seen].T + w.intercept[seen]
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), model.predict_proba(X), atol=1e-12)


def test_multiclass_rows_are_reordered() -> None:
    model, _ = _fitted()
    w = classifier_from_estimator(model, ["f0", "f1", "f2"], ["c", "a", "b"])
    for k, c in enumerate(["c", "a", "b"]):
        np.testing.assert_array_equal(w.coef[k], model.coef_[list(model.classes_).index(c)])
    assert w.feature_std is None


def test_class_outside_the_order_is_refused() -> None:
    model, _ = _fitted(("x", "y"))
    with pytest.raises(ValueError, match=r"class\(es\) \['x', 'y'\] outside the class order"):
        classifier_from_estimator(model, ["f0", "f1", "f2"], ["a", "b"])


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    from fusion_utils.interpret.weights import ClassifierWeights

    w = ClassifierWeights(coef=rng.normal(size=(3, 4)), intercept=rng.normal(size=3),
                          feature_names=np.array(["img.0", "img.1", "meta.age", "meta.sex"]),
                          classes=np.array(["NORM", "MI", "CD"]), feature_std=rng.random(4))
    path = save_classifier(tmp_path / "run" / "classifier_fused.npz", w)
    back = load_classifier(path)
    for key in ("coef", "intercept", "feature_std"):
        np.testing.assert_array_equal(getattr(back, key), getattr(w, key))
    assert list(back.feature_names) == list(w.feature_names)
    assert list(back.classes) == ["NORM", "MI", "CD"]
    assert not list(path.parent.glob(".*tmp*"))  # atomic: no temporary left behind


def test_missing_and_damaged_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="notebook 04"):
        load_classifier(tmp_path / "classifier_image.npz")
    bad = tmp_path / "classifier_image.npz"
    np.savez(bad, coef=np.zeros((2, 2)))
    with pytest.raises(RunFolderError, match=r"classifier_image.npz: not a classifier file"):
        load_classifier(bad)
    good = tmp_path / "good.npz"
    np.savez(good, coef=np.zeros((2, 2)), intercept=np.zeros(2), feature_names=np.array(["a", "b"]),
             classes=np.array(["x", "y"]))
    truncated = tmp_path / "classifier_fused.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(RunFolderError, match=r"classifier_fused.npz: damaged classifier file"):
        load_classifier(truncated)
