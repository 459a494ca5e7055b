"""Resolution comparison: same images at 600x450 and 200x150."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fusion_utils.features import resolution


def test_predict_with_weights_is_the_argmax_and_skips_untrained_classes() -> None:
    w = SimpleNamespace(coef=np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]]),
                        intercept=np.array([0.0, 0.5, 100.0]), classes=np.array(["a", "b", "c"]))
    X = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert resolution.predict_with_weights(w, X).tolist() == ["a", "b", "b"]


@pytest.fixture
def small_pair(shared_ham, tmp_path):
    """Four real images present in both folders, in a HAM10000-layout folder of links."""
    table = pd.read_csv(shared_ham / "HAM10000_metadata.csv")
    have = {p.stem for p in (shared_ham / "images").glob("*.jpg")}
    rows = table[table["image_id"].isin(have)].groupby("dx").head(1).head(4)
    folder = tmp_path / "ham"
    for sub in ("images", "images_200x150"):
        (folder / sub).mkdir(parents=True)
        for i in rows["image_id"]:
            (folder / sub / f"{i}.jpg").symlink_to(shared_ham / sub / f"{i}.jpg")
    rows.to_csv(folder / "HAM10000_metadata.csv", index=False)
    return folder, rows


@pytest.mark.shared_data
@pytest.mark.slow
def test_same_folder_twice_gives_cosine_one(small_pair) -> None:
    folder, rows = small_pair
    res = resolution.compare_resolutions(folder, reduced="images", use_cache=False)
    assert res.summary["n_images"] == len(rows) == 4
    np.testing.assert_allclose(res.per_image["cosine"], 1.0, atol=1e-6)


@pytest.mark.shared_data
@pytest.mark.slow
def test_reduced_copies_are_close_but_not_identical(small_pair) -> None:
    folder, _ = small_pair
    n_classes = 7
    w = SimpleNamespace(coef=np.random.default_rng(0).normal(size=(n_classes, 1280)),
                        intercept=np.zeros(n_classes),
                        classes=np.array(["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]))
    res = resolution.compare_resolutions(folder, classifier=w, use_cache=False)
    cos = res.per_image["cosine"].to_numpy()
    assert ((cos > 0.7) & (cos < 0.9999)).all()
    assert res.summary["full_resolution"] == "600x450"
    assert res.summary["reduced_resolution"] == "200x150"
    assert 0.0 <= res.summary["agreement"] <= 1.0
    assert set(res.per_image.columns) >= {"pred_full", "pred_reduced", "agree"}
    assert "4 HAM10000 images" in res.sentence()


def test_summary_by_split_counts_agreement_and_accuracy_per_split() -> None:
    per_image = pd.DataFrame({
        "record_id": list("abcdef"), "label": ["nv", "nv", "mel", "mel", "nv", "bcc"],
        "cosine": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        "pred_full": ["nv", "mel", "mel", "nv", "nv", "nv"],
        "pred_reduced": ["nv", "nv", "mel", "mel", "bcc", "nv"],
        "split": ["train", "train", "test", "test", "test", None]})
    per_image["agree"] = per_image["pred_full"] == per_image["pred_reduced"]
    out = resolution.summary_by_split(per_image)
    assert set(out) == {"train", "test"}  # the record without a split is left out
    assert out["train"] == {"n_images": 2, "cosine_mean": pytest.approx(0.85),
                            "agreement": 0.5, "accuracy_full": 0.5, "accuracy_reduced": 1.0}
    assert out["test"]["n_images"] == 3
    assert out["test"]["agreement"] == pytest.approx(1 / 3)
    assert out["test"]["accuracy_full"] == pytest.approx(2 / 3)  # c and e
    assert out["test"]["accuracy_reduced"] == pytest.approx(2 / 3)  # c and d
