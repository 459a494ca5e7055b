"""Softmax classifier (multinomial logistic regression), the paper's Eq. (4).

:class:`SoftmaxClassifier` is a scikit-learn estimator trained full batch, as in the paper: at most
``max_epochs`` iterations over the whole training set, stopping early when the gradient norm falls
below ``tol`` (the paper: 2000 epochs, 1e-6).

Why not scikit-learn's ``LogisticRegression``
---------------------------------------------
scikit-learn solves the same problem and is the reference in the tests (same optimum, loss within
1e-6 relative). It is not used here because its L-BFGS works on the raw feature scale: fused
features mix CNN activations (~0-10) with metadata such as ``age`` (~60) or ``recording_date.year``
(~2000), which makes the problem badly conditioned, and L-BFGS then needs hundreds to thousands of
iterations. This module runs L-BFGS on an *implicitly* centred and diagonally rescaled copy of the
problem (a Jacobi preconditioner; no copy of ``X`` is made) that has **exactly the same optimum** as
the unscaled problem because the penalty is transformed with the variables. It also lets the
caller choose ``float32`` storage, the paper's stopping rule and the epoch budget.

Objective and stopping rule
---------------------------
With ``n`` samples, one-hot targets ``Y`` and probabilities ``P = softmax(X W^T + b)``::

    J(W, b) = mean_i(-log P[i, y_i]) + l2 / 2 * ||W||_F^2        (b is not penalised)

scikit-learn minimises ``C * sum_i loss_i + ||w||^2 / 2`` which is ``n * C`` times ``J`` with
``l2 = 1 / (C * n)``; :func:`sklearn_C` converts. The stopping rule is the Euclidean norm of the
gradient of ``J`` over all parameters (``W`` and ``b``, in the *original* feature scale):
``||grad J||_2 < tol``. Because ``J`` uses the **mean** loss the rule does not depend on ``n``; on
the summed loss the same ``tol`` would be ``n`` times stricter (15,000 times for PTB-XL).
scikit-learn's ``tol`` is the largest absolute gradient component of the same mean objective,
which is never larger than the Euclidean norm, so at equal ``tol`` this rule is the stricter one.

Unpenalised, separable data
---------------------------
With ``l2 = 0`` (the paper's setting) and linearly separable training data (common with thousands
of CNN features and a few thousand images) the loss has no finite minimiser: it decreases towards
zero as ``||W||`` grows along a separating direction. The gradient of the mean cross-entropy is
bounded by the loss times the feature scale, so the gradient rule still stops, once the training
loss itself has fallen to about ``tol``: the weights returned then have a size set by ``tol``
(smaller ``tol``, larger weights; their direction tends to the max-margin one), and when the
feature scale keeps the gradient above ``tol`` the fit runs to ``max_epochs`` with a
:class:`~sklearn.exceptions.ConvergenceWarning`. Either way the result depends on the stopping
rule, as in the paper's MATLAB runs; use ``l2 > 0`` for a unique, reproducible optimum, and compare
with scikit-learn only on a penalised problem.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["SoftmaxClassifier", "sklearn_C", "softmax"]

_SOLVERS = ("lbfgs", "gd")


def sklearn_C(l2: float, n_samples: int) -> float:
    """scikit-learn's ``C`` for the same penalty: ``C = 1 / (l2 * n_samples)`` (``inf`` for 0)."""
    return float("inf") if l2 == 0 else 1.0 / (l2 * n_samples)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable (the row maximum is subtracted first)."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class _Problem:
    """Loss and gradient of ``J`` in preconditioned variables ``(V, c)``.

    ``W = V / s`` (column ``j`` divided by ``s_j``) and ``b = c - V @ (mu / s)``, so that the
    logits are ``((X - mu) / s) V^T + c`` without ever forming the rescaled ``X``.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, l2: float, mu: np.ndarray, s: np.ndarray):
        self.X, self.Y, self.l2 = X, Y, l2
        self.mu, self.s = mu, s
        self.n, self.d = X.shape
        self.k = Y.shape[1]
        self.n_evals = 0

    def to_wb(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        V = theta[: self.k * self.d].reshape(self.k, self.d)
        c = theta[self.k * self.d:]
        W = V / self.s
        return W, c - W @ self.mu

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Return ``J``, its gradient in ``(V, c)`` and ``||grad J||_2`` in ``(W, b)``."""
        self.n_evals += 1
        W, b = self.to_wb(theta)
        Z = (self.X @ W.T.astype(self.X.dtype, copy=False)).astype(np.float64, copy=False)
        Z += b
        Z -= Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(Z).sum(axis=1))
        loss = float(np.mean(lse - np.einsum("ik,ik->i", Z, self.Y)))
        P = np.exp(Z - lse[:, None])
        R = (P - self.Y) / self.n
        # X^T R is faster than R^T X with a row-major X (one streaming pass, BLAS gemm)
        gW = (self.X.T @ R.astype(self.X.dtype, copy=False)).T.astype(np.float64)
        gb = R.sum(axis=0)
        if self.l2:
            loss += 0.5 * self.l2 * float(np.sum(W * W))
            gW = gW + self.l2 * W
        gnorm = float(np.sqrt(np.sum(gW * gW) + np.sum(gb * gb)))
        gV = (gW - np.outer(gb, self.mu)) / self.s
        return loss, np.concatenate([gV.ravel(), gb]), gnorm


def _lbfgs(fun: _Problem, theta: np.ndarray, max_iter: int, tol: float, memory: int = 10
           ) -> tuple[np.ndarray, float, float, int, list[float], str]:
    """Minimise with L-BFGS (two-loop recursion, backtracking Armijo line search).

    Returns the parameters, final loss, final gradient norm (the stopping quantity), the number
    of iterations (epochs), the loss history and why it stopped (``"tol"``, ``"max_epochs"`` or
    ``"line_search"``: no decrease possible at the working precision).
    """
    f, g, gnorm = fun(theta)
    history = [f]
    S: list[np.ndarray] = []
    Yd: list[np.ndarray] = []
    rho: list[float] = []
    it = 0
    while it < max_iter and gnorm >= tol:
        q = g.copy()
        alpha = []
        for s_, y_, r_ in zip(reversed(S), reversed(Yd), reversed(rho), strict=True):
            a = r_ * float(s_ @ q)
            alpha.append(a)
            q -= a * y_
        if S:
            q *= float(S[-1] @ Yd[-1]) / float(Yd[-1] @ Yd[-1])
        else:
            q /= max(float(np.linalg.norm(g)), 1e-12)  # first step: unit length
        for s_, y_, r_, a in zip(S, Yd, rho, reversed(alpha), strict=True):
            q += (a - r_ * float(y_ @ q)) * s_
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            S.clear(), Yd.clear(), rho.clear()
            direction = -g / max(float(np.linalg.norm(g)), 1e-12)
            slope = float(g @ direction)
        step = 1.0
        for _ in range(40):
            new = theta + step * direction
            f_new, g_new, gnorm_new = fun(new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return theta, f, gnorm, it, history, "line_search"  # no decrease at this precision
        s_vec, y_vec = new - theta, g_new - g
        sy = float(s_vec @ y_vec)
        if sy > 1e-12 * float(y_vec @ y_vec):
            S.append(s_vec), Yd.append(y_vec), rho.append(1.0 / sy)
            if len(S) > memory:
                S.pop(0), Yd.pop(0), rho.pop(0)
        theta, f, g, gnorm = new, f_new, g_new, gnorm_new
        history.append(f)
        it += 1
    return theta, f, gnorm, it, history, ("tol" if gnorm < tol else "max_epochs")


def _gd(fun: _Problem, theta: np.ndarray, max_iter: int, tol: float
        ) -> tuple[np.ndarray, float, float, int, list[float], str]:
    """Full-batch gradient descent with a backtracking step (the paper's 'gradient descent')."""
    f, g, gnorm = fun(theta)
    history = [f]
    step, it = 1.0, 0
    while it < max_iter and gnorm >= tol:
        gg = float(g @ g)
        for _ in range(40):
            new = theta - step * g
            f_new, g_new, gnorm_new = fun(new)
            if f_new <= f - 0.5 * step * gg:
                break
            step *= 0.5
        else:
            return theta, f, gnorm, it, history, "line_search"
        theta, f, g, gnorm = new, f_new, g_new, gnorm_new
        history.append(f)
        step *= 2.0  # let the step grow again
        it += 1
    return theta, f, gnorm, it, history, ("tol" if gnorm < tol else "max_epochs")


class SoftmaxClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression trained full batch (the paper's softmax classifier).

    Parameters
    ----------
    max_epochs : int
        Maximum number of iterations over the full training set (the paper: 2000).
    tol : float
        Stop when the Euclidean norm of the gradient of the mean objective falls below ``tol``
        (the paper: 1e-6). See the module docstring for why the mean, not the sum.
    l2 : float
        L2 penalty ``l2 / 2 * ||W||^2`` on the weights (not the intercept), added to the mean
        cross-entropy. ``0`` is the paper's setting. scikit-learn's ``C = 1 / (l2 * n)``.
    standardize : bool
        If True, features are standardised with the training mean and std before fitting and the
        penalty acts on the standardised weights (a *different* model when ``l2 > 0``). ``coef_``
        is always reported on the original feature scale. Off by default, as in the paper.
    solver : {"lbfgs", "gd"}
        ``"lbfgs"``: preconditioned L-BFGS (fast, default). ``"gd"``: preconditioned full-batch
        gradient descent with backtracking (slow; for illustration).
    dtype : numpy dtype
        Storage and matrix-product precision of ``X`` (``np.float64`` or ``np.float32``); the loss,
        gradient accumulation and optimiser state are always float64.
    random_state : int
        Kept for scikit-learn conventions; the fit is deterministic (zero initialisation).

    Attributes
    ----------
    coef_ : ndarray (n_classes, n_features)
    intercept_ : ndarray (n_classes,)
    classes_ : ndarray (n_classes,)
    n_epochs_ : int
        Iterations run.
    grad_norm_ : float
        Gradient norm at the end (compare with ``tol``).
    loss_ : float
        Final value of the objective ``J``.
    loss_curve_ : list of float
        ``J`` after each epoch (first entry: at initialisation).
    converged_ : bool
        ``grad_norm_ < tol``.
    stop_reason_ : str
        ``"tol"``, ``"max_epochs"`` or ``"line_search"`` (no further decrease possible).
    fit_time_ : float
        Seconds spent in ``fit``.
    feature_std_ : ndarray (n_features,)
        Per-feature standard deviation of the training matrix (for standardised weights).
    """

    def __init__(self, max_epochs: int = 2000, tol: float = 1e-6, l2: float = 0.0,
                 standardize: bool = False, solver: str = "lbfgs",
                 dtype: Any = np.float64, random_state: int = 0):
        self.max_epochs = max_epochs
        self.tol = tol
        self.l2 = l2
        self.standardize = standardize
        self.solver = solver
        self.dtype = dtype
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver={self.solver!r}: expected one of {', '.join(_SOLVERS)}")
        if np.dtype(self.dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype={self.dtype!r}: pass np.float64 or np.float32")
        if not (isinstance(self.max_epochs, int | np.integer) and self.max_epochs >= 0):
            raise ValueError(f"max_epochs={self.max_epochs!r}: pass a non-negative integer")
        if not self.tol >= 0 or not self.l2 >= 0:
            raise ValueError(f"tol={self.tol!r}, l2={self.l2!r}: both must be >= 0")

    def fit(self, X: Any, y: Any) -> SoftmaxClassifier:
        """Fit on ``X`` (n, d) and labels ``y`` (n,); returns ``self``."""
        self._check_params()
        t0 = time.perf_counter()
        X, y = validate_data(self, X, y, dtype=np.dtype(self.dtype), order="C")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class {self.classes_!r}: need at least two")
        n, d = X.shape
        k = len(self.classes_)
        Y = np.zeros((n, k))
        Y[np.arange(n), y_idx] = 1.0
        mu = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        self.feature_std_ = std
        safe_std = np.where(std > 0, std, 1.0)
        if self.standardize:
            # penalty on standardised weights: W_std = W * std; same as l2 * std^2 per feature
            scale_model = safe_std
        else:
            scale_model = np.ones(d)
        # Jacobi preconditioner: diagonal of the Hessian ~ var/4 + l2 (per original weight).
        l2_eff = self.l2 * scale_model**2
        s = np.sqrt(0.25 * std**2 + l2_eff)
        s = np.where(s > 0, s, 1.0)
        problem = _StdProblem(X, Y, self.l2, mu, s, scale_model) if self.standardize else \
            _Problem(X, Y, self.l2, mu, s)
        theta0 = np.zeros(k * d + k)
        run = _lbfgs if self.solver == "lbfgs" else _gd
        theta, loss, gnorm, n_it, hist, reason = run(problem, theta0, int(self.max_epochs),
                                                     self.tol)
        W, b = problem.to_wb(theta)
        self.coef_, self.intercept_ = W, b
        self.n_epochs_, self.grad_norm_, self.loss_ = n_it, gnorm, loss
        self.loss_curve_ = hist
        self.n_loss_evaluations_ = problem.n_evals
        self.converged_ = gnorm < self.tol
        self.stop_reason_ = reason
        self.fit_time_ = time.perf_counter() - t0
        if not self.converged_:
            why = ("the loss could not decrease further at this precision (float32 storage "
                   "limits the reachable gradient norm; use dtype=np.float64)"
                   if reason == "line_search" else
                   f"max_epochs={self.max_epochs} was reached (with l2=0 and separable data "
                   "there is no finite optimum: pass l2 > 0 for a unique solution)")
            warnings.warn(
                f"SoftmaxClassifier stopped after {n_it} epochs with gradient norm {gnorm:.3g} "
                f">= tol={self.tol:g}: {why}", ConvergenceWarning, stacklevel=2)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``X W^T + b``, shape (n, n_classes)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (Eq. 4), shape (n, n_classes), columns in ``classes_`` order."""
        return softmax(self.decision_function(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        z = self.decision_function(X)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def objective(self, X: Any, y: Any) -> float:
        """Value of this estimator's objective ``J`` at the fitted weights on ``(X, y)``."""
        check_is_fitted(self, "coef_")
        logp = self.predict_log_proba(X)
        idx = np.searchsorted(self.classes_, np.asarray(y))
        loss = -float(np.mean(logp[np.arange(len(idx)), idx]))
        W = self.coef_ * (self.feature_std_ if self.standardize else 1.0)
        return loss + 0.5 * self.l2 * float(np.sum(W * W))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class _StdProblem(_Problem):
    """Like :class:`_Problem` but the penalty acts on ``W * scale`` (standardised weights)."""

    def __init__(self, X, Y, l2, mu, s, scale):
        super().__init__(X, Y, 0.0, mu, s)
        self.l2_std = l2
        self.scale = scale

    def __call__(self, theta):
        loss, grad, _ = super().__call__(theta)
        W, _ = self.to_wb(theta)
        Ws = W * self.scale
        loss += 0.5 * self.l2_std * float(np.sum(Ws * Ws))
        pen_gW = self.l2_std * Ws * self.scale
        # recompute the data gradient in W space from grad (V, c): gW = gV * s + outer(gb, mu)
        k, d = self.k, self.d
        gb = grad[k * d:]
        gW_data = grad[: k * d].reshape(k, d) * self.s + np.outer(gb, self.mu)
        gW = gW_data + pen_gW
        gnorm = float(np.sqrt(np.sum(gW * gW) + np.sum(gb * gb)))
        gV = (gW - np.outer(gb, self.mu)) / self.s
        return loss, np.concatenate([gV.ravel(), gb]), gnorm
