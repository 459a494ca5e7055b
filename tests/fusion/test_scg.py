"""solver="trainscg" against an independent transcription of MATLAB's trainscg, and its properties.

The reference below is written from MathWorks' ``trainscg.m`` (Moller's scaled conjugate
gradient as MATLAB iterates it) and ``trainSoftmaxLayer``'s set-up (zero weights, loss
``sum(-t log y) / numel(t)``), in plain NumPy, in MATLAB's own parameter layout (``[b; IW(:)]``,
column-major, with ``D x N`` inputs). It shares no code with the package.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils.fusion.softmax import SoftmaxClassifier


def _matlab_perf_grad(wb, X, T):
    """perf = sum(-T .* log(Y)) / numel(T) and its gradient; X is D x N, T is K x N."""
    K, D = T.shape[0], X.shape[0]
    b, IW = wb[:K], wb[K:].reshape((K, D), order="F")
    A = IW @ X + b[:, None]
    A = A - A.max(axis=0)
    Y = np.exp(A) / np.exp(A).sum(axis=0)
    perf = float(np.sum(-T * np.log(Y))) / T.size
    E = (Y - T) / T.size
    return perf, np.concatenate([E.sum(axis=1), (E @ X.T).ravel(order="F")])


def _reference_trainscg(X, T, epochs, **kw):
    """trainSoftmaxLayer: zero weights, trainscg on the N K-mean cross-entropy."""
    K, D = T.shape[0], X.shape[0]
    WB, epoch, stop, perfs, n_fail, gradient = _reference_scg(
        lambda wb: _matlab_perf_grad(wb, X, T), np.zeros(K * (D + 1)), epochs, **kw)
    b, IW = WB[:K], WB[K:].reshape((K, D), order="F")
    return IW, b, epoch, stop, perfs, n_fail, gradient


def _reference_scg(perf_grad, WB, epochs, min_grad=1e-6, sigma=5e-5, lam=5e-7):
    """trainscg.m, line by line (gWB is the *negative* gradient, as in MATLAB)."""
    perf, g = perf_grad(WB)
    gWB = -g
    gradient = np.sqrt(gWB @ gWB)
    success, lambdab, lambdak = 1, 0.0, lam
    dWB = gWB.copy()
    nrmsqr_dWB = dWB @ dWB
    norm_dWB = np.sqrt(nrmsqr_dWB)
    lengthWB = len(WB)
    epoch, perfs, n_fail, deltak = 0, [perf], 0, 0.0
    while True:
        if perf <= 0:
            stop = "goal"
            break
        if epoch == epochs:
            stop = "epochs"
            break
        if gradient <= min_grad:
            stop = "min_grad"
            break
        epoch += 1
        if success == 1:
            sigmak = sigma / norm_dWB
            gWB_temp = -perf_grad(WB + sigmak * dWB)[1]
            sk = (gWB - gWB_temp) / sigmak
            deltak = dWB @ sk
        deltak = deltak + (lambdak - lambdab) * nrmsqr_dWB
        if deltak <= 0:
            lambdab = 2 * (lambdak - deltak / nrmsqr_dWB)
            deltak = -deltak + lambdak * nrmsqr_dWB
            lambdak = lambdab
        muk = dWB @ gWB
        alphak = muk / deltak
        WB_temp = WB + alphak * dWB
        perf_temp, g_temp = perf_grad(WB_temp)
        difk = 2 * deltak * (perf - perf_temp) / muk**2
        if difk >= 0:
            gX_old = gWB
            WB, perf, gWB = WB_temp, perf_temp, -g_temp
            gradient = np.sqrt(gWB @ gWB)
            lambdab, success = 0.0, 1
            if epoch % lengthWB == 1:
                dWB = gWB
            else:
                betak = (gWB @ gWB - gWB @ gX_old) / muk
                dWB = gWB + betak * dWB
            nrmsqr_dWB = dWB @ dWB
            norm_dWB = np.sqrt(nrmsqr_dWB)
            if difk >= 0.75:
                lambdak = 0.25 * lambdak
        else:
            lambdab, success = lambdak, 0
            n_fail += 1
        if difk < 0.25 and nrmsqr_dWB != 0:
            lambdak = lambdak + deltak * (1 - difk) / nrmsqr_dWB
        perfs.append(perf)
    return WB, epoch, stop, perfs, n_fail, gradient


def _data(n=150, d=6, k=3, seed=0, age=True):
    """Overlapping classes (finite optimum), optionally an 'age' column at its natural scale."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 0.8 * (y[:, None] == (np.arange(d) % k))
    if age:
        X[:, 0] = rng.normal(60, 10, n) + 2 * y
    return X, y


def _onehot(y, k):
    return (np.arange(k)[:, None] == y[None, :]).astype(float)


@pytest.mark.parametrize(("epochs", "blocked"), [(1, False), (7, False), (40, False), (40, True)])
def test_same_weights_as_the_transcription_of_trainscg(epochs, blocked, monkeypatch):
    import fusion_utils.fusion._optim as optim
    import fusion_utils.fusion.softmax as sm

    if blocked:  # the torch evaluation of fusion/_optim, in 64-row blocks, instead of NumPy
        monkeypatch.setattr(sm, "_MATLAB_PERF_TORCH_MIN", 0)
        monkeypatch.setattr(optim, "_BLOCK_BYTES", 8)
    X, y = _data()
    IW, b, ep, stop, perfs, _, gradient = _reference_trainscg(X.T, _onehot(y, 3), epochs)
    m = SoftmaxClassifier(solver="trainscg", max_epochs=epochs).fit(X, y)
    assert stop == "epochs" and m.n_epochs_ == ep == epochs and m.stop_reason_ == "max_epochs"
    np.testing.assert_allclose(m.coef_, IW, rtol=1e-7, atol=1e-10 * np.abs(IW).max())
    np.testing.assert_allclose(m.intercept_, b, rtol=1e-7, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(m.loss_curve_, perfs, rtol=1e-9)
    assert m.grad_norm_ == pytest.approx(gradient, rel=1e-6)


def _rosenbrock(x):
    f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return float(f), g


def test_rejected_steps_follow_the_transcription():
    """On Rosenbrock's function SCG rejects steps; the rejection branch must match too."""
    from fusion_utils.fusion._scg import trainscg

    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    WB, ep, stop, perfs, n_fail, gradient = _reference_scg(_rosenbrock, x0, 300)
    assert n_fail > 0  # the failure branch is exercised
    res = trainscg(_rosenbrock, x0, epochs=300)
    assert res.epochs == ep and res.stop_reason == stop
    assert sum(not a for a in res.accepted) == n_fail
    np.testing.assert_allclose(res.perf_history, perfs, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.x, WB, rtol=1e-9, atol=1e-12)
    assert res.gradient == pytest.approx(gradient, rel=1e-6, abs=1e-12)


def test_starts_from_zero_weights_on_the_nk_mean_loss():
    X, y = _data(k=4)
    m = SoftmaxClassifier(solver="trainscg", max_epochs=3).fit(X, y)
    # W = 0: y = 1/K everywhere, perf = sum(-t log(1/K)) / (N K) = log(K) / K
    assert m.loss_curve_[0] == pytest.approx(np.log(4) / 4, rel=1e-12)


def test_loss_never_increases_and_stops_at_min_grad():
    X, y = _data(age=False)
    m = SoftmaxClassifier(solver="trainscg", max_epochs=2000, tol=1e-6).fit(X, y)
    assert m.stop_reason_ == "tol" and m.converged_
    assert m.grad_norm_ <= 1e-6 and 0 < m.n_epochs_ < 2000
    curve = np.asarray(m.loss_curve_)
    assert len(curve) == m.n_epochs_ + 1
    assert np.all(np.diff(curve) <= 0) and curve[-1] < curve[0]
    # the same problem with a looser threshold stops earlier, above the strict one's gradient
    loose = SoftmaxClassifier(solver="trainscg", tol=1e-3).fit(X, y)
    assert loose.stop_reason_ == "tol" and loose.n_epochs_ < m.n_epochs_
    assert 1e-6 < loose.grad_norm_ <= 1e-3


def test_stops_at_the_epoch_limit_without_warning():
    import warnings

    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = SoftmaxClassifier(solver="trainscg", max_epochs=12).fit(X, y)
    assert m.n_epochs_ == 12 and m.stop_reason_ == "max_epochs" and not m.converged_
    assert m.grad_norm_ > 1e-6


def test_deterministic_and_refuses_penalty_or_scaling():
    X, y = _data()
    a = SoftmaxClassifier(solver="trainscg", max_epochs=30).fit(X, y)
    b = SoftmaxClassifier(solver="trainscg", max_epochs=30).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    with pytest.raises(ValueError, match="l2=0"):
        SoftmaxClassifier(solver="trainscg", l2=1e-3).fit(X, y)
    with pytest.raises(ValueError, match="standardize"):
        SoftmaxClassifier(solver="trainscg", standardize=True).fit(X, y)


def test_scg_minimises_a_quadratic():
    """Moller's method on a convex quadratic: the gradient threshold is reached."""
    from fusion_utils.fusion._scg import trainscg

    rng = np.random.default_rng(0)
    A = rng.normal(size=(8, 8))
    H = A @ A.T + np.eye(8)
    c = rng.normal(size=8)
    res = trainscg(lambda x: (0.5 * x @ H @ x - c @ x, H @ x - c), np.zeros(8),
                   epochs=500, min_grad=1e-8, goal=-np.inf)  # goal 0 would stop at once
    assert res.stop_reason == "min_grad" and res.gradient <= 1e-8
    np.testing.assert_allclose(res.x, np.linalg.solve(H, c), atol=1e-7)
    assert res.epochs <= 3 * len(c) and all(res.accepted)
