"""The interpretability and metadata-only chapters' sentences, from tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_utils.interpret.summary import (
    metadata_only_summary,
    reading_summary,
    weight_ratio_summary,
)


def test_weight_ratio_summary_numbers():
    text = weight_ratio_summary(100.0, [0.5, 100.0, 3.0])
    assert "**100** (10^2.00;" in text
    assert "across the 3 run(s) it ranges from 0.5 to 100." in text


def test_reading_summary_best_ties_rank_moves_and_image_block():
    reading = pd.DataFrame({
        "mean_abs_weight": [0.9, 0.1, 0.9], "permutation_importance": [0.0, 0.05, 0.0005],
        "rank_mean_abs_weight": [1, 3, 1], "rank_permutation_importance": [3, 1, 2]},
        index=["sex", "age", "device"])
    perm = pd.DataFrame({"feature": ["image features (all)", "age", "sex"],
                         "importance_mean": [0.2, 0.05, 0.0]})
    lines = reading_summary(reading, perm).splitlines()
    assert lines[0] == "- by **raw weight** the most important metadata column is `sex`, `device`"
    assert lines[1] == "- by **permutation importance** the most important metadata column is `age`"
    assert lines[2].endswith("permutation importance: `sex`, `age`")
    assert lines[3] == ("- shuffling all image features costs 0.200 macro AUROC, the most "
                        "important metadata column 0.050")
    flat = reading.assign(permutation_importance=[0.0, 0.0005, np.nan])
    assert "no metadata column has a measurable effect" in reading_summary(flat)


def test_metadata_only_summary_lists_sets_differences_and_columns():
    auroc = pd.DataFrame({"column_set": ["patient", "leak"], "encoding": ["onehot"] * 2,
                          "label_leak": [False, True], "auroc": [0.7, 0.9],
                          "ci_low": [0.65, 0.88], "ci_high": [0.75, 0.92]})
    delta = pd.DataFrame({"model": ["leak [onehot] - patient [onehot]"], "auroc": [0.2],
                          "ci_low": [0.15], "ci_high": [0.25]})
    imps = [pd.DataFrame({"column_set": ["patient"] * 4, "feature": ["age", "sex", "h", "w"],
                          "importance_mean": [0.1, 0.05, 0.01, 0.0]})]
    text = metadata_only_summary(auroc, delta, imps, source="demo", n_records=1234, n_test=200,
                                 split_scheme="group", seed=0, n_bootstrap=50, encoding="onehot")
    assert text.startswith("Data: demo; 1,234 records, 200 in the test split "
                           "(`split_scheme='group'`, seed 0, 50 bootstrap resamples).")
    assert "- `patient` [onehot]: macro AUROC **0.700 [0.650, 0.750]**\n" in text
    assert "**0.900 [0.880, 0.920]** **(label leak: not a baseline)**" in text
    assert "- leak [onehot] - patient [onehot]: +0.200 [+0.150, +0.250]" in text
    assert text.endswith("- `patient` [onehot]: age 0.100, sex 0.050, h 0.010")
