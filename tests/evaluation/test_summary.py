"""The evaluation chapter's sentences, from tables with known counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_utils.evaluation.summary import data_label, evaluation_summary


def test_evaluation_summary_counts_and_signs():
    imp = pd.DataFrame({"improvement": [2.0, -1.0, 0.0, 3.25]},
                       index=["accuracy", "specificity", "f1", "auroc"])
    sig = pd.DataFrame({"class": list("abcd"), "diff": [0.02, -0.03, 0.01, np.nan],
                        "p_value": [0.01, 0.04, 0.2, np.nan]})
    text = evaluation_summary(imp, sig)
    assert text == ("With metadata, 2 of 4 macro metrics improve and 1 get worse; the macro "
                    "AUROC changes by +3.2 percentage points, and 2 of 3 tested classes have a "
                    "significant AUROC change (1 up, 1 down) (DeLong's paired test, p <= 0.05, "
                    "not corrected for 3 tests).")
    stricter = evaluation_summary(imp, sig, alpha=0.02)
    assert "1 of 3 tested classes" in stricter and "(1 up, 0 down)" in stricter


def test_data_label_names_the_run_and_its_size():
    assert data_label("toy", "ptbxl", 1234) == "run toy (PTB-XL), 1,234 test records"
    assert data_label("x", "ham10000", 5).startswith("run x (HAM10000)")
