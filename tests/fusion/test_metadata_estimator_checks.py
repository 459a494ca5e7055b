"""MetadataEncoder passes scikit-learn's estimator checks (``check_estimator``'s suite).

Every check of the suite runs as its own test (``parametrize_with_checks``), for each encoding.
The encoder's intended input is a DataFrame of mixed types; the suite feeds 2-D arrays, empty
and sparse input, which the encoder handles as its module docstring says (arrays are tables with
columns ``x0``, ``x1``, ...; the rest is refused with scikit-learn's own errors). A check that is
known to fail would be listed in ``EXPECTED_FAILURES`` with its reason and reported as an
expected failure; today there is none (33 of 47 failed before the encoder accepted arrays).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion_utils.fusion.metadata import ENCODINGS, MetadataEncoder

# check name -> why MetadataEncoder fails it (none today).
EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks([MetadataEncoder(encoding=e) for e in ENCODINGS],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_the_fixed_behaviours():
    """What the suite used to flag, asserted directly with scikit-learn's messages."""
    X = np.arange(12.0).reshape(4, 3)
    with pytest.raises(NotFittedError):
        MetadataEncoder().transform(X)
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        MetadataEncoder().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(3, 0\)\)"):
        MetadataEncoder().fit(np.empty((3, 0)))
    with pytest.raises(ValueError, match="Expected 2D array"):
        MetadataEncoder().fit(X[:, 0])
    with pytest.raises(TypeError, match="dense data is required"):
        MetadataEncoder().fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MetadataEncoder().fit(X + 1j)
    np.testing.assert_array_equal(MetadataEncoder().fit(X).transform(X), X)
    tags = get_tags(MetadataEncoder())
    assert tags.input_tags.allow_nan and tags.input_tags.string
    assert tags.input_tags.two_d_array and not tags.input_tags.sparse
