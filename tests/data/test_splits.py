"""Split properties: sizes, stratification, zero group overlap, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.data import splits

HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142,
              "df": 115}


def _labels(counts: dict[str, int], seed: int = 0) -> np.ndarray:
    y = np.concatenate([[k] * v for k, v in counts.items()])
    return np.random.default_rng(seed).permutation(y)


def _sizes(split: np.ndarray) -> dict[str, int]:
    return {s: int((split == s).sum()) for s in splits.SPLITS}


def test_stratified_split_on_ham_class_sizes() -> None:
    y = _labels(HAM_COUNTS)
    split = splits.stratified_split(y, seed=0)
    # per-class rounding gives the paper's 1,502 validation and 1,502 test images
    assert _sizes(split) == {"train": 7011, "val": 1502, "test": 1502}
    table = pd.crosstab(y, split)
    for cls, n in HAM_COUNTS.items():
        assert table.loc[cls, "val"] == np.floor(n * 0.15 + 0.5)
        assert table.loc[cls, "test"] == np.floor(n * 0.15 + 0.5)
        assert table.loc[cls].sum() == n


def test_stratified_split_is_seeded() -> None:
    y = _labels({"a": 40, "b": 20})
    first = splits.stratified_split(y, seed=3)
    np.testing.assert_array_equal(first, splits.stratified_split(y, seed=3))
    assert not np.array_equal(first, splits.stratified_split(y, seed=4))
    assert _sizes(first) == _sizes(splits.stratified_split(y, seed=4))


def test_stratified_split_tiny_classes_and_fractions() -> None:
    y = np.array(["a"] * 10 + ["b"] * 2 + ["c"])
    split = splits.stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    assert _sizes(split[y == "a"]) == {"train": 6, "val": 2, "test": 2}
    assert split[y == "c"].tolist() == ["train"]
    assert split[y == "b"].tolist() == ["train", "train"]  # round(2 * 0.2) = 0
    with pytest.raises(ValueError, match="sum to 1"):
        splits.stratified_split(y, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="missing values"):
        splits.stratified_split(["a", None])


def test_strat_fold_split() -> None:
    folds = np.arange(1, 11).repeat(3)
    split = splits.strat_fold_split(folds)
    assert _sizes(split) == {"train": 24, "val": 3, "test": 3}
    assert set(split[folds == 9]) == {"val"} and set(split[folds == 10]) == {"test"}
    with pytest.raises(ValueError, match=r"outside 1-10"):
        splits.strat_fold_split([1, 11])


@pytest.mark.shared_data
def test_strat_fold_on_real_table(shared_ptbxl: Path) -> None:
    from fusion_utils.data.ptbxl import load_ptbxl_table

    df = load_ptbxl_table(shared_ptbxl)
    split = splits.strat_fold_split(df["strat_fold"])
    # folds keep each patient in one fold (Wagner et al. 2020)
    per_patient = pd.Series(split, index=df.index).groupby(df["patient_id"].to_numpy()).nunique()
    assert per_patient.max() == 1
    fractions = np.array([_sizes(split)[s] for s in splits.SPLITS]) / len(df)
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.01)


def test_group_split_has_no_overlap_and_keeps_balance() -> None:
    rng = np.random.default_rng(0)
    n_groups = 600
    group_label = rng.choice(["A", "B", "C"], size=n_groups, p=[0.6, 0.3, 0.1])
    sizes = rng.integers(1, 5, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes).astype(str)
    y = np.repeat(group_label, sizes)
    split = splits.group_stratified_split(y, groups, (0.7, 0.15, 0.15), seed=1)
    per_group = pd.Series(split).groupby(groups).nunique()
    assert per_group.max() == 1  # zero overlap
    frac = np.array([_sizes(split)[s] for s in splits.SPLITS]) / len(y)
    np.testing.assert_allclose(frac, [0.7, 0.15, 0.15], atol=0.03)
    for cls in "ABC":
        share = pd.Series(y[split == "test"]).eq(cls).mean()
        assert abs(share - np.mean(y == cls)) < 0.06
    np.testing.assert_array_equal(split, splits.group_stratified_split(y, groups, seed=1))


@pytest.mark.shared_data
def test_group_split_on_real_lesions(shared_ham: Path) -> None:
    from fusion_utils.data.ham10000 import load_ham_table

    df = load_ham_table(shared_ham)
    split = splits.group_stratified_split(df["label"], df["lesion_id"], seed=0)
    assert pd.Series(split).groupby(df["lesion_id"].to_numpy()).nunique().max() == 1
    frac = np.array([_sizes(split)[s] for s in splits.SPLITS]) / len(df)
    np.testing.assert_allclose(frac, [0.7, 0.15, 0.15], atol=0.02)


def test_group_split_tiny_inputs() -> None:
    assert splits.group_stratified_split(["a", "b"], ["g", "g"]).tolist() == ["train", "train"]
    split = splits.group_stratified_split(["a"] * 6 + ["b"] * 3, list("112233445"), seed=0)
    assert pd.Series(split).groupby(list("112233445")).nunique().max() == 1
    with pytest.raises(ValueError, match="differ in length"):
        splits.group_stratified_split(["a", "b"], ["g"])


def test_stratified_subsample() -> None:
    y = _labels({"a": 90, "b": 9, "c": 1})
    idx = splits.stratified_subsample(y, 20, seed=0)
    assert len(idx) == 20 and len(set(idx)) == 20 and np.all(np.diff(idx) > 0)
    counts = pd.Series(y[idx]).value_counts().to_dict()
    assert counts == {"a": 17, "b": 2, "c": 1}  # every class kept, rest in proportion
    np.testing.assert_array_equal(idx, splits.stratified_subsample(y, 20, seed=0))
    assert len(splits.stratified_subsample(y, 1000)) == 100
    with pytest.raises(ValueError, match="positive"):
        splits.stratified_subsample(y, 0)
