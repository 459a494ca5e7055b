"""Metric entry points refuse strings, NaN and missing labels with a MetricInputError."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils.errors import MetricInputError
from fusion_utils.evaluation.metrics import macro_auroc, per_class_metrics

CLASSES = ["a", "b"]
Y = ["a", "b", "a", "b"]
P = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])


def test_clean_input_gives_the_known_answer() -> None:
    assert macro_auroc(Y, P, CLASSES) == 1.0


def test_nan_probabilities_are_refused() -> None:
    bad = P.copy()
    bad[2, 0] = np.nan
    with pytest.raises(MetricInputError, match=r"NaN or infinite values in 1 row\(s\).*rows \[2\]"):
        macro_auroc(Y, bad, CLASSES)


def test_string_probabilities_are_refused() -> None:
    bad = P.astype(object)
    bad[1, 1] = "high"
    with pytest.raises(MetricInputError, match=r"proba must hold numbers.*'high'"):
        per_class_metrics(Y, bad, CLASSES)


def test_missing_labels_are_refused() -> None:
    with pytest.raises(MetricInputError, match=r"1 missing label\(s\).*row\(s\) \[3\]"):
        macro_auroc(["a", "b", "a", None], P, CLASSES)
    with pytest.raises(MetricInputError, match=r"label\(s\) \['c'\] not in classes"):
        macro_auroc(["a", "b", "a", "c"], P, CLASSES)
