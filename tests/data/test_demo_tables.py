"""Tests of fusion_utils.data._demo_tables.

Class counts and metadata tables drawn from the priors.
"""

from __future__ import annotations

import ast

import pandas as pd
import pytest

from fusion_utils.data import _demo_tables as tables


@pytest.mark.parametrize(("n", "dataset"), [(400, "ptbxl"), (400, "ham10000"), (5, "ptbxl"),
                                            (7, "ham10000"), (61, "ham10000"), (1003, "ptbxl")])
def test_class_counts_sum_floor_and_order(n: int, dataset: str) -> None:
    counts = tables.class_counts(n, dataset)
    classes = tables.PTBXL_CLASSES if dataset == "ptbxl" else tables.HAM_CLASSES
    assert tuple(counts) == classes
    assert sum(counts.values()) == n
    assert min(counts.values()) >= 1
    if n >= 100:  # the floor: every class gets at least ~8 % (rounding aside)
        assert min(counts.values()) >= int(tables.CLASS_FLOOR * n) - 1
    if dataset == "ptbxl" and n >= 100:
        assert max(counts, key=counts.get) == "NORM" and min(counts, key=counts.get) == "HYP"


def test_class_counts_known_answers_and_errors() -> None:
    assert tables.class_counts(400, "ptbxl") == {"NORM": 166, "MI": 69, "STTC": 68, "CD": 57,
                                               "HYP": 40}
    assert tables.class_counts(400, "ham10000") == {"akiec": 38, "bcc": 41, "bkl": 51, "df": 34,
                                                  "mel": 52, "nv": 150, "vasc": 34}
    with pytest.raises(ValueError, match=">= 5"):
        tables.class_counts(4, "ptbxl")
    with pytest.raises(ValueError, match="unknown dataset"):
        tables.class_counts(10, "mnist")


def test_ptbxl_metadata_follows_the_priors() -> None:
    table = tables.ptbxl_table(3000, seed=1)
    codes = table["scp_codes"].map(ast.literal_eval)
    statements = pd.read_csv(pd.io.common.StringIO(tables._SCP_STATEMENTS_CSV), index_col=0)
    diag = statements[statements["diagnostic"] == 1]["diagnostic_class"]
    labels = codes.map(lambda c: {diag[k] for k in c if k in diag.index})
    assert labels.map(len).eq(1).all()  # exactly one superclass each
    label = labels.map(lambda s: next(iter(s)))
    assert label.value_counts().to_dict() == tables.class_counts(3000, "ptbxl")
    age = table.groupby(label)["age"].mean()
    for cls in ("MI", "STTC", "CD", "HYP"):  # NORM patients are about 10 years younger
        assert age[cls] - age["NORM"] > 6, age
    female = table.groupby(label)["sex"].mean()
    assert female["STTC"] > female["MI"] + 0.1 and female["NORM"] > female["CD"] + 0.08
    height_missing = table["height"].isna().groupby(label).mean()
    assert height_missing["MI"] > height_missing["HYP"] + 0.15  # real: 0.81 vs 0.51
    assert 0.55 < table["height"].isna().mean() < 0.8 and 0.4 < table["weight"].isna().mean() < 0.7
    # repeat visits: one patient, one fold, one sex
    per_patient = table.groupby("patient_id").agg(folds=("strat_fold", "nunique"),
                                                  sexes=("sex", "nunique"))
    assert (per_patient[["folds", "sexes"]] == 1).all().all()
    assert 1.05 < len(table) / table["patient_id"].nunique() < 1.3
    assert set(table["strat_fold"]) == set(range(1, 11))
    # metadata alone separates the classes better than chance (balanced accuracy, 5 classes)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    x = pd.get_dummies(table[["sex", "site", "device", "nurse"]].astype(str)).assign(
        age=table["age"].fillna(60) / 100, h_nan=table["height"].isna(),
        w_nan=table["weight"].isna())
    score = cross_val_score(LogisticRegression(max_iter=500), x.to_numpy(float), label,
                            cv=3, scoring="balanced_accuracy").mean()
    assert score > 0.2 + 0.07, score


def test_ham_metadata_follows_the_priors() -> None:
    table = tables.ham_table(3000, seed=2)
    assert table["dx"].value_counts().to_dict() == tables.class_counts(3000, "ham10000")
    assert table["image_id"].is_unique
    per_lesion = len(table) / table["lesion_id"].nunique()
    assert 1.2 < per_lesion < 1.5  # real: 1.34 (more for mel, fewer for nv)
    lesion_meta = (table.groupby("lesion_id")[["dx", "age", "sex", "localization"]]
                   .nunique(dropna=False))
    assert (lesion_meta == 1).all().all()  # images of one lesion share its metadata
    age = table.groupby("dx")["age"].mean()
    assert age.idxmin() == "nv" and age[["akiec", "bcc"]].min() > age["nv"] + 12
    assert set(table["age"].dropna() % 5) == {0.0} and table["age"].max() <= 85
    male = (table[table["sex"] != "unknown"].assign(m=lambda d: d["sex"] == "male")
            .groupby("dx")["m"].mean())
    assert male["akiec"] > male["vasc"] + 0.08
    face = (table["localization"] == "face").groupby(table["dx"]).mean()
    assert face["akiec"] > 0.2 and face["nv"] < 0.06 and face["df"] == 0
    assert (table.loc[table["dx"] == "nv", "dx_type"] == "follow_up").mean() > 0.4
    assert table["age"].isna().sum() > 0 and (table["sex"] == "unknown").sum() > 0
    assert table.loc[table["age"].isna(), "sex"].eq("unknown").all()
