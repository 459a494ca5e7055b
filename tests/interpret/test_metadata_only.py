"""Metadata-only column sets."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils import interpret as I

CLASSES = np.array(["a", "b", "c"])


def test_parse_column_sets():
    assert I.parse_column_sets("", "ptbxl") == I.DEFAULT_COLUMN_SETS["ptbxl"]
    assert I.parse_column_sets("p=meta.age, sex", "ham10000") == {"p": ("age", "sex")}
    assert I.parse_column_sets("p:age;q:sex", "ptbxl") == {"p": ("age",), "q": ("sex",)}
    with pytest.raises(ValueError, match="name=col1"):
        I.parse_column_sets("age,sex", "ptbxl")
