"""SoftmaxClassifier against scikit-learn's optimum, its stopping rule and its conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusion_utils.softmax import SoftmaxClassifier, sklearn_C, softmax


def _data(n=400, d=20, k=4, seed=0):
    """Overlapping classes (finite optimum) with one 'age' column at its natural scale."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 0.5 * (y[:, None] == (np.arange(d) % k))
    X[:, 0] = rng.normal(60, 10, n) + 2 * y
    return X, np.array(["NORM", "MI", "STTC", "CD"])[y]


def _objective(X, y, coef, intercept, classes, l2):
    """Mean cross-entropy + l2/2 ||W||^2, written out independently."""
    z = X @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    idx = np.searchsorted(classes, y)
    return -logp[np.arange(len(y)), idx].mean() + 0.5 * l2 * np.sum(coef**2)


def _sklearn(X, y, l2):
    return LogisticRegression(C=sklearn_C(l2, len(y)), tol=1e-10, max_iter=20000).fit(X, y)


@pytest.mark.parametrize("l2", [1e-2, 1e-4])
def test_same_optimum_as_sklearn(l2):
    X, y = _data()
    ours = SoftmaxClassifier(l2=l2).fit(X, y)
    ref = _sklearn(X, y, l2)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    f_ours = _objective(X, y, ours.coef_, ours.intercept_, ours.classes_, l2)
    f_ref = _objective(X, y, ref.coef_, ref.intercept_, ref.classes_, l2)
    assert abs(f_ours - f_ref) / f_ref < 1e-6
    assert f_ours == pytest.approx(ours.loss_, rel=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    assert ours.converged_ and ours.grad_norm_ < 1e-6 and ours.stop_reason_ == "tol"


def test_C_mapping_objectives_are_proportional():
    """sklearn minimises C*sum(loss) + ||w||^2/2 = C*n*J when l2 = 1/(C n)."""
    X, y = _data(n=100)
    C = 0.37
    l2 = 1.0 / (C * len(y))
    assert sklearn_C(l2, len(y)) == pytest.approx(C)
    assert sklearn_C(0.0, 10) == float("inf")
    rng = np.random.default_rng(1)
    classes = np.unique(y)
    W, b = rng.normal(size=(4, X.shape[1])) * 0.01, rng.normal(size=4)
    J = _objective(X, y, W, b, classes, l2)
    sk = C * len(y) * _objective(X, y, W, b, classes, 0.0) + 0.5 * np.sum(W**2)
    assert sk == pytest.approx(C * len(y) * J)


def test_stopping_rule_is_norm_of_mean_gradient():
    X, y = _data()
    m = SoftmaxClassifier(l2=1e-3, tol=1e-6).fit(X, y)
    # independent gradient of J at the returned weights
    classes = m.classes_
    Y = (y[:, None] == classes[None, :]).astype(float)
    P = softmax(X @ m.coef_.T + m.intercept_)
    gW = (P - Y).T @ X / len(y) + 1e-3 * m.coef_
    gb = (P - Y).mean(axis=0)
    norm = np.sqrt(np.sum(gW**2) + np.sum(gb**2))
    assert norm == pytest.approx(m.grad_norm_, rel=1e-6)
    assert norm < 1e-6
    # a looser tolerance stops earlier, at a larger gradient
    loose = SoftmaxClassifier(l2=1e-3, tol=1e-2).fit(X, y)
    assert loose.n_epochs_ < m.n_epochs_ and 1e-6 <= loose.grad_norm_ < 1e-2


def test_max_epochs_stops_and_warns():
    X, y = _data()
    with pytest.warns(ConvergenceWarning, match="max_epochs=3"):
        m = SoftmaxClassifier(l2=1e-3, max_epochs=3).fit(X, y)
    assert m.n_epochs_ == 3 and not m.converged_ and m.stop_reason_ == "max_epochs"
    assert len(m.loss_curve_) == 4
    assert all(a >= b for a, b in zip(m.loss_curve_, m.loss_curve_[1:], strict=False))


def test_unpenalised_separable_has_no_finite_optimum():
    """l2=0 on separable data: the weights found are set by tol (or max_epochs), not by the data."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-3, 1, (30, 2)), rng.normal(3, 1, (30, 2))]
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    norms = []
    for tol in (1e-3, 1e-6, 1e-9):
        m = SoftmaxClassifier(l2=0.0, tol=tol).fit(X, y)
        assert m.converged_ and m.loss_ < 10 * tol  # the loss itself falls to ~tol
        norms.append(np.linalg.norm(m.coef_))
    assert norms[0] < norms[1] < norms[2]  # smaller tol, larger weights: no finite minimiser
    with pytest.warns(ConvergenceWarning, match="no finite optimum"):
        capped = SoftmaxClassifier(l2=0.0, max_epochs=5).fit(X, y)
    assert capped.n_epochs_ == 5 and capped.stop_reason_ == "max_epochs"


def test_standardize_equals_sklearn_on_scaled_features():
    X, y = _data()
    ours = SoftmaxClassifier(l2=1e-2, standardize=True).fit(X, y)
    Xs = StandardScaler().fit_transform(X)
    ref = _sklearn(Xs, y, 1e-2)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(Xs), atol=1e-5)
    # coef_ is on the original scale: standardised weights = coef_ * std
    np.testing.assert_allclose(ours.coef_ * X.std(axis=0), ref.coef_, atol=1e-4)


def test_gd_solver_and_float32_reach_the_optimum():
    X, y = _data(n=200, d=6)
    ref = SoftmaxClassifier(l2=1e-2).fit(X, y)
    gd = SoftmaxClassifier(l2=1e-2, solver="gd", max_epochs=5000).fit(X, y)
    assert abs(gd.loss_ - ref.loss_) / ref.loss_ < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # float32 may stall above tol
        f32 = SoftmaxClassifier(l2=1e-2, dtype=np.float32).fit(X, y)
    assert abs(f32.loss_ - ref.loss_) / ref.loss_ < 1e-5


def test_estimator_conventions():
    X, y = _data(n=120)
    m = clone(SoftmaxClassifier(l2=1e-2)).fit(X, y)
    assert m.coef_.shape == (4, X.shape[1]) and m.intercept_.shape == (4,)
    P = m.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(m.predict(X), m.classes_[P.argmax(axis=1)])
    np.testing.assert_allclose(np.exp(m.predict_log_proba(X)), P)
    assert m.decision_function(X).shape == (120, 4)
    assert 0 <= m.score(X, y) <= 1
    assert m.feature_std_ == pytest.approx(X.std(axis=0))
    with pytest.raises(ValueError, match="solver"):
        SoftmaxClassifier(solver="sgd").fit(X, y)
    with pytest.raises(ValueError, match="single class"):
        SoftmaxClassifier().fit(X, np.zeros(len(y)))
