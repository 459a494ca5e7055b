"""SoftmaxClassifier passes scikit-learn's estimator checks (``check_estimator``'s suite).

Every check of scikit-learn's suite runs as its own test (``parametrize_with_checks``). A check
that is known to fail would be listed in ``EXPECTED_FAILURES`` with its reason, and then reported
as an expected failure; today there is none.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion_utils.fusion.softmax import SoftmaxClassifier

# check name -> why SoftmaxClassifier fails it (none today).
EXPECTED_FAILURES: dict[str, str] = {}


# a penalty and a short SCG budget keep the suite fast (unpenalised fits of separable data run to
# max_epochs); the checks test the estimator's API, not its optimum.
@parametrize_with_checks([SoftmaxClassifier(l2=1e-2), SoftmaxClassifier(solver="trainscg",
                                                                         max_epochs=200)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_the_fixed_behaviours():
    """The ones the suite used to flag, asserted directly."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=40) > 0, "b", "a")
    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(SoftmaxClassifier(), method)(X)
    m = SoftmaxClassifier(l2=1e-2).fit(X, y)
    z = m.decision_function(X)  # binary: the score of classes_[1], as scikit-learn's
    assert z.shape == (40,)
    np.testing.assert_array_equal(m.predict(X), m.classes_[(z > 0).astype(int)])
    np.testing.assert_allclose(z, np.log(m.predict_proba(X)[:, 1] / m.predict_proba(X)[:, 0]))
    with pytest.raises(ValueError, match="Unknown label type"):
        SoftmaxClassifier().fit(X, X[:, 0])  # continuous targets
    with pytest.raises(ValueError, match="1 class"):
        SoftmaxClassifier().fit(X, np.full(40, "a"))
