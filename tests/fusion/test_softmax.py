"""SoftmaxClassifier against scikit-learn's optimum, its stopping rule and its conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusion_utils.fusion.softmax import SoftmaxClassifier, sklearn_C, softmax


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
    with pytest.raises(ValueError, match="only 1 class"):
        SoftmaxClassifier().fit(X, np.zeros(len(y)))


# --- the preconditioner (full-matrix Hessian model, see the module docstring) -----------------

def _ill_conditioned(n=600, k=3, seed=0):
    """Correlated ReLU features, a duplicated and a constant column, age ~60, year ~2000, month.

    Column 30 duplicates column 0 and column 31 is constant (7.0): the covariance matrix is
    singular. The Jacobi-preconditioned version of this module needed 156-186 epochs here.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    latent = rng.normal(size=(n, 5)) + 0.8 * rng.normal(size=(k, 5))[y]
    img = np.maximum(latent @ rng.normal(size=(5, 30)) + 0.3 * rng.normal(size=(n, 30)), 0)
    age = rng.normal(60, 15, n) + 3 * y
    year = rng.integers(1984, 2002, n).astype(float)
    month = rng.integers(1, 13, n).astype(float)
    return np.column_stack([img, img[:, 0], np.full(n, 7.0), age, year, month]), y


def _problem(X, y, l2_vec):
    from fusion_utils.fusion._optim import _Objective, _Preconditioner

    classes, idx = np.unique(y, return_inverse=True)
    Y = np.eye(len(classes))[idx]
    mu = X.mean(axis=0)
    return _Objective(X, Y, l2_vec, mu), _Preconditioner(X, mu, l2_vec, len(classes)), Y


@pytest.mark.parametrize("standardize", [False, True])
def test_gradient_in_centred_coordinates_matches_finite_differences(standardize):
    X, y = _ill_conditioned(n=200)
    scale = X.std(axis=0) if standardize else np.ones(X.shape[1])
    l2 = 1e-2 * np.where(scale > 0, scale, 1.0) ** 2
    fun, _, Y = _problem(X, y, l2)
    rng = np.random.default_rng(3)
    theta = rng.normal(scale=0.01, size=3 * (X.shape[1] + 1))
    f, g, gnorm = fun(theta)
    for _ in range(3):
        v = rng.normal(size=theta.shape)
        h = 1e-6
        fd = (fun(theta + h * v)[0] - fun(theta - h * v)[0]) / (2 * h)
        assert fd == pytest.approx(float(g @ v), rel=1e-6, abs=1e-9)
    # the value and the stopping quantity are those of J in the original (W, b) coordinates
    W, b = fun.to_wb(theta)
    classes = np.unique(y)
    assert f == pytest.approx(_objective(X, y, W, b, classes, 0.0) + 0.5 * np.sum(l2 * W**2),
                              rel=1e-12)
    P = softmax(X @ W.T + b)
    gW = (P - Y).T @ X / len(y) + l2 * W
    gb = (P - Y).mean(axis=0)
    assert gnorm == pytest.approx(np.sqrt(np.sum(gW**2) + np.sum(gb**2)), rel=1e-10)
    np.testing.assert_allclose(fun.from_wb(W, b), theta, atol=1e-12)


def test_preconditioner_inverts_the_weighted_covariance_model():
    """M^{-1} v solves M r = v with M = Xa^T diag(w) Xa / n + diag(l2, 0), Xa = [X - mu, 1]."""
    X, y = _ill_conditioned(n=300)
    X = X[:, :30]  # full rank: the 1e-6 ridge is then negligible
    l2 = np.full(X.shape[1], 1e-3)
    _, pre, _ = _problem(X, y, l2)
    P = np.random.default_rng(0).dirichlet(np.ones(3), size=len(y))
    pre.update(P)
    w = (P * (1 - P)).max(axis=1)
    Xa = np.column_stack([X - X.mean(axis=0), np.ones(len(y))])
    M = Xa.T @ (w[:, None] * Xa) / len(y) + np.diag(np.r_[l2, 0.0])
    v = np.random.default_rng(1).normal(size=3 * (X.shape[1] + 1))
    r = pre(v).reshape(3, -1)
    np.testing.assert_allclose(r @ M, v.reshape(3, -1), rtol=1e-3, atol=1e-4 * np.abs(v).max())
    assert pre.n_updates == 1 and pre.setup_time > 0


@pytest.mark.parametrize("l2", [1e-3, 1e-4])
def test_ill_conditioned_same_optimum_as_sklearn_in_few_epochs(l2, monkeypatch):
    import fusion_utils.fusion._optim as optim

    X, y = _ill_conditioned()
    # a small problem builds the full model at once under "auto" ...
    cheap = SoftmaxClassifier(l2=l2).fit(X, y)
    assert cheap.full_preconditioner_from_ == 0 and cheap.converged_
    # ... a large one (here: any) starts diagonal and judges its progress
    monkeypatch.setattr(optim, "_CHEAP_FULL_MODEL", 0.0)
    ours = SoftmaxClassifier(l2=l2).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), cheap.predict_proba(X), atol=1e-6)
    # the optimum does not depend on centring X (the intercept absorbs it): sklearn on centred X
    # converges reliably; its intercept is then b + W mu
    mu = X.mean(axis=0)
    ref = _sklearn(X - mu, y, l2)
    assert ref.n_iter_[0] < 20000
    f_ours = _objective(X, y, ours.coef_, ours.intercept_, ours.classes_, l2)
    f_ref = _objective(X, y, ref.coef_, ref.intercept_ - ref.coef_ @ mu, ref.classes_, l2)
    assert abs(f_ours - f_ref) / f_ref < 1e-6
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.coef_[:, 0], ours.coef_[:, 30], atol=1e-6)  # duplicates
    assert np.abs(ours.coef_[:, 31]).max() < 1e-9  # constant column: no weight
    assert ours.converged_ and ours.stop_reason_ == "tol"
    # the Jacobi (diagonal) preconditioner needed 156-170 epochs, sklearn 400-520
    assert ours.n_epochs_ <= 60
    assert ours.n_loss_evaluations_ <= ours.n_epochs_ + 10
    # "auto": the diagonal model at 0 is judged too slow after 10 iterations; the full one is
    # built then and refreshed at 20, 60, ...
    assert ours.full_preconditioner_from_ == 10
    assert ours.n_preconditioner_updates_ == 2 + sum(t < ours.n_epochs_ for t in (20, 60, 180))
    assert 0 < ours.preconditioner_time_ < ours.fit_time_


def test_ill_conditioned_unpenalised_matches_sklearn():
    """l2 = 0 with a duplicated and a constant column: coef_ is not unique, the fit is."""
    X, y = _ill_conditioned()
    ours = SoftmaxClassifier(l2=0.0).fit(X, y)
    mu = X.mean(axis=0)
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=20000).fit(X - mu, y)
    f_ours = _objective(X, y, ours.coef_, ours.intercept_, ours.classes_, 0.0)
    f_ref = _objective(X, y, ref.coef_, ref.intercept_ - ref.coef_ @ mu, ref.classes_, 0.0)
    assert abs(f_ours - f_ref) / f_ref < 1e-6
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X - mu), atol=1e-4)
    assert np.abs(ours.coef_[:, 31]).max() < 1e-9
    assert ours.converged_ and ours.n_epochs_ <= 60 and np.all(np.isfinite(ours.coef_))


def test_ill_conditioned_standardize_same_optimum_as_sklearn_on_scaled_features():
    X, y = _ill_conditioned()
    ours = SoftmaxClassifier(l2=1e-3, standardize=True).fit(X, y)
    std = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    Xs = (X - X.mean(axis=0)) / std
    ref = _sklearn(Xs, y, 1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(Xs), atol=1e-5)
    np.testing.assert_allclose(ours.coef_ * std, ref.coef_, atol=1e-4)
    assert ours.converged_ and ours.n_epochs_ <= 60


def test_blocked_and_float32_evaluations_match_the_direct_formula(monkeypatch):
    import fusion_utils.fusion._optim as sm

    X, y = _ill_conditioned(n=300)
    l2 = np.full(X.shape[1], 1e-3)
    theta = np.random.default_rng(5).normal(scale=0.01, size=3 * (X.shape[1] + 1))
    whole, _, Y = _problem(X, y, l2)
    f, g, gnorm = whole(theta)
    monkeypatch.setattr(sm, "_BLOCK_BYTES", 8)  # 64-row blocks: five of them, the last short
    blocked, _, _ = _problem(X, y, l2)
    fb, gb, gnb = blocked(theta)
    assert fb == pytest.approx(f, rel=1e-13) and gnb == pytest.approx(gnorm, rel=1e-12)
    np.testing.assert_allclose(gb, g, rtol=1e-11, atol=1e-15)
    W, b = whole.to_wb(theta)
    assert f == pytest.approx(_objective(X, y, W, b, np.unique(y), 0.0)
                              + 0.5 * np.sum(l2 * W**2), rel=1e-12)
    # the centred float32 copy: the same numbers to float32 precision
    monkeypatch.setattr(sm, "_LOW_PRECISION_MIN_ENTRIES", 0)
    mu = X.mean(axis=0)
    low = sm._Objective(X, Y, l2, mu, mixed_precision=True)
    assert low.low_precision and low.X32.dtype.is_floating_point
    np.testing.assert_allclose(low.X32.numpy()[:, 31], 0.0, atol=1e-12)  # constant column
    fl, gl, gnl = low(theta)
    assert low.n_low_precision_evals == 1
    assert fl == pytest.approx(f, rel=1e-6) and gnl == pytest.approx(gnorm, rel=1e-4)
    np.testing.assert_allclose(gl, g, atol=1e-5 * np.abs(g).max())


def test_mixed_precision_reaches_the_float64_optimum(monkeypatch):
    import fusion_utils.fusion._optim as sm

    monkeypatch.setattr(sm, "_LOW_PRECISION_MIN_ENTRIES", 0)
    X, y = _data(n=1500, d=60, k=4, seed=2)
    l2 = 1e-3
    mixed = SoftmaxClassifier(l2=l2).fit(X, y)
    plain = SoftmaxClassifier(l2=l2, mixed_precision=False).fit(X, y)
    assert 0 < mixed.n_low_precision_evaluations_ < mixed.n_loss_evaluations_
    assert plain.n_low_precision_evaluations_ == 0
    assert mixed.converged_ and mixed.stop_reason_ == "tol"
    f_mixed = _objective(X, y, mixed.coef_, mixed.intercept_, mixed.classes_, l2)
    f_plain = _objective(X, y, plain.coef_, plain.intercept_, plain.classes_, l2)
    assert f_mixed == pytest.approx(f_plain, rel=1e-9)
    np.testing.assert_allclose(mixed.coef_, plain.coef_, atol=1e-5)
    # the stopping test was passed in float64: recompute the gradient independently
    Y = np.eye(4)[np.searchsorted(mixed.classes_, y)]
    P = softmax(X @ mixed.coef_.T + mixed.intercept_)
    gW = (P - Y).T @ X / len(y) + l2 * mixed.coef_
    gb = (P - Y).mean(axis=0)
    assert np.sqrt(np.sum(gW**2) + np.sum(gb**2)) < mixed.tol


def test_numpy_blas_runs_single_threaded_in_the_optimiser(monkeypatch):
    from threadpoolctl import threadpool_limits

    import fusion_utils.fusion._optim as sm

    seen = {}
    original = sm._lbfgs

    def spy(fun, pre, *args, **kwargs):
        seen["inside"], seen["syrk"] = sm._blas_thread_count(), pre.blas_threads
        return original(fun, pre, *args, **kwargs)

    monkeypatch.setattr(sm, "_lbfgs", spy)
    X, y = _data()
    with threadpool_limits(limits=2, user_api="blas"):
        outer = sm._blas_thread_count()
        SoftmaxClassifier(l2=1e-3).fit(X, y)
        after = sm._blas_thread_count()
    assert seen == {"inside": 1, "syrk": outer} and after == outer


def test_auto_builds_the_full_model_at_once_only_when_it_is_cheap():
    from fusion_utils.fusion._optim import _CHEAP_FULL_MODEL, _full_model_is_cheap

    assert _full_model_is_cheap(1073, 1284)  # real PTB-XL fused features
    assert _full_model_is_cheap(7011, 1283)  # real HAM10000 fused features
    assert not _full_model_is_cheap(15000, 4106)  # the paper's 4096-d networks at PTB-XL scale
    d = 1000
    assert _full_model_is_cheap(int(_CHEAP_FULL_MODEL / (d + 1) ** 2), d)
    assert not _full_model_is_cheap(int(_CHEAP_FULL_MODEL / (d + 1) ** 2) + 1, d)


def test_evaluation_threads_chosen_by_time_and_results_identical(monkeypatch):
    """The objective times one call with 1 torch thread and one with all, keeps the faster,
    re-tries the other every _THREAD_TRIAL calls; the result has the same bits either way."""
    import torch

    import fusion_utils.fusion._optim as optim

    rng = np.random.default_rng(0)
    n, d, k = 5000, 20, 3
    X = rng.normal(size=(n, d))
    Y = np.eye(k)[rng.integers(0, k, n)]
    theta = rng.normal(size=k * (d + 1)) * 0.1
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        obj = optim._Objective(X, Y, np.full(d, 1e-3), X.mean(axis=0))
        assert obj.max_threads == 2
        used: list[int] = []
        real = obj._evaluate

        def spy(th):
            used.append(torch.get_num_threads())
            return real(th)

        monkeypatch.setattr(obj, "_evaluate", spy)
        outs = [obj(theta) for _ in range(4)]
        assert used[:3] == [2, 1, 2]  # first call as set, then one timed call with each
        assert torch.get_num_threads() == 2  # restored after each call
        for loss, grad, gnorm in outs[1:]:
            assert loss == outs[0][0] and gnorm == outs[0][2]
            np.testing.assert_array_equal(grad, outs[0][1])
        # the choice follows the timings: 1 thread faster -> 1, then a trial of 2 that wins -> 2
        obj._timed = {1: [0.1], 2: [0.3]}
        obj.n_evals = 4
        assert obj._threads_for_this_call() == 1 and obj.threads == 1
        obj.n_evals = 2 * optim._THREAD_TRIAL
        assert obj._threads_for_this_call() == 2  # the periodic trial of the other count
        obj._timed[2].append(0.05)
        obj.n_evals += 1
        assert obj._threads_for_this_call() == 2 and obj.threads == 2
        obj._timed[1].append(0.01)
        obj.n_evals = 3 * optim._THREAD_TRIAL + 1
        assert obj._threads_for_this_call() == 1
    finally:
        torch.set_num_threads(before)


def test_hessian_model_has_the_same_bits_whatever_the_threads():
    """Models up to _MODEL_THREADS_ABOVE columns are built with one thread, so neither the
    caller's thread settings nor the machine's load change the fit's path."""
    import torch

    import fusion_utils.fusion._optim as optim

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(800, 300)))
    P = rng.dirichlet(np.ones(4), size=800)
    before = torch.get_num_threads()
    models = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            pre = optim._Preconditioner(X, X.mean(axis=0), np.zeros(300), 4, mode="full")
            pre.blas_threads = threads
            pre.update(P)
            assert torch.get_num_threads() == threads  # restored
            models.append(pre.Minv.numpy().copy())
    finally:
        torch.set_num_threads(before)
    assert 301 <= optim._MODEL_THREADS_ABOVE
    np.testing.assert_array_equal(models[0], models[1])
