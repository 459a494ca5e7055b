"""Softmax classifier (multinomial logistic regression), the paper's Eq. (4).

:class:`SoftmaxClassifier` is a scikit-learn estimator trained full batch, as in the paper: at most
``max_epochs`` iterations over the whole training set, stopping early when the gradient norm falls
below ``tol`` (the paper: 2000 epochs, 1e-6).

Why not scikit-learn's ``LogisticRegression``
---------------------------------------------
scikit-learn solves the same problem and is the reference in the tests (same optimum, loss within
1e-6 relative). It is not used here because its L-BFGS works on the raw feature scale: fused
features mix correlated CNN activations (~0-10) with metadata such as ``age`` (~60) or
``recording_date.year`` (~2000), which makes the problem badly conditioned, and L-BFGS then needs
hundreds to thousands of iterations (at PTB-XL scale, 15,000 x 4,100, it stops at its 2000
iteration budget). This module keeps L-BFGS but gives it a model of the Hessian. It also lets the
caller choose ``float32`` storage, the paper's stopping rule and the epoch budget.

How the fit is preconditioned
-----------------------------
Preconditioning is a change of variables with the same optimum: minimising ``J(T z)`` over ``z``
for an invertible linear ``T`` is equivalent to minimising ``J``, and gradient-type methods
converge in a number of iterations set by the conditioning of ``T^T H T`` instead of ``H`` (the
Hessian); with ``T T^T = M^{-1}`` for a model ``M ~ H`` the scaled problem is close to a sphere
(Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, sections 5.1 "preconditioning" and
7.2, where L-BFGS takes such a matrix as its initial inverse Hessian ``H0``). L-BFGS with
``H0 = gamma M^{-1}`` performs exactly the iterations of plain L-BFGS in the variables ``z`` without
ever forming them; the objective, its gradient and the stopping rule stay in the original
coordinates, so neither the optimum nor the stopping test depends on ``M``. Two pieces:

* **Centring** (exact): the parameters are ``W`` and the intercept ``c = b + W @ mu`` of centred
  features (``mu`` the column means), so the logits are ``(X - mu) W^T + c``. This alone removes
  the coupling of a column at ``~2000`` with the intercept. ``X`` is never copied.
* **Full-matrix Hessian model** (shared by all classes):
  ``M = [X - mu, 1]^T diag(w) [X - mu, 1] / n + diag(l2, 0)`` with per-sample curvature weights
  ``w_i = max_k p_ik (1 - p_ik)``: the softmax Hessian is a sum over samples of
  ``(diag(p_i) - p_i p_i^T) (x) x_i x_i^T``, and ``w_i`` is a scalar stand-in for its ``K x K``
  factor. At the start (``p = 1/K``) ``M`` is ``(1/K)(1 - 1/K)`` times the covariance matrix,
  which captures the correlations between features and their scales (a diagonal, Jacobi,
  rescaling only captures the scales and needed ~5x more iterations); ``M`` is rebuilt with the
  current probabilities after 20, 60, 180, ... iterations, since on nearly separable training
  data (thousands of features, a few thousand records) the curvature concentrates on the few
  records near the class boundaries. ``M`` is formed in float32 (one ``syrk`` over the
  retained records, about a second at PTB-XL scale), scaled to unit diagonal, given a ridge of
  1e-6 so that its Cholesky factor exists when ``l2 = 0`` and columns are constant or duplicated,
  and inverted once in float64; applying it is one ``(K, d+1) @ (d+1, d+1)`` product. The
  L-BFGS pairs stay valid when ``M`` changes (they live in the original coordinates).

How a loss evaluation is made cheap
-----------------------------------
At PTB-XL scale an evaluation is bound by memory bandwidth: ``X`` (492 MB in float64) is read
for the logits and again for the gradient. Three things cut that cost, none of which changes
the optimum or the stopping test:

* **One pass in row blocks** of about 16 MiB: each block's logits, probabilities and gradient
  contribution are computed while the block is still in the cache (torch matrix products,
  2-4x faster than NumPy's OpenBLAS for a right-hand side of ``K`` columns).
* **Mixed precision** (``mixed_precision=True``, large float64 ``X`` only): the early
  iterations read a centred float32 copy of ``X``, half the bytes; once the gradient norm is
  below ``10 tol`` (or a line search stalls on float32 rounding) the point is re-evaluated in
  float64 and the fit finishes in float64, so the final gradient, and the stopping test, are
  float64.
* **No thread contention**: NumPy's BLAS is held to one thread while the optimiser runs (its
  threads otherwise spin after each dot product and take the cores from torch's threads in the
  next evaluation: measured 2x slower evaluations on 2 cores).

At PTB-XL scale (15,000 x 4,100, 5 classes, ``l2 = 1/n``, ``tol = 1e-6``, 2 cores) the previous
Jacobi version needed 738 iterations and 161 s; this one needs about 140 iterations, 110 of them
in float32, plus three builds of ``M``: about 20 s in all (``benchmarks/bench_softmax.py``,
where scikit-learn's lbfgs runs out of its 2000 iterations in about 500 s). scikit-learn's
``LogisticRegression`` is the reference for the optimum in the tests. Not done: a
``K x K``-coupled (exact block) Hessian model, whose factorisation (``K d`` unknowns) would
cost more than the iterations it saves.

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


# Iterations after which the preconditioner is rebuilt with the current curvature weights
# (geometric: each rebuild costs about as much as 10-20 loss evaluations at PTB-XL scale).
_REFRESH_AT = (20, 60, 180, 540, 1620)
# Samples whose weight is below this fraction of the largest one are left out of the rebuild.
_ACTIVE = 1e-3
# Ridge added to the unit-diagonal Hessian model so that its Cholesky factorisation exists.
_RIDGE = 1e-6
# Rows of X per block of a loss evaluation: about 16 MiB, so that the block read by the logits
# product is still in the cache for the gradient product (one pass over X from memory, not two).
_BLOCK_BYTES = 16 << 20
# With mixed precision, products run in float32 until the gradient norm is below this many
# times tol; the rest of the fit, and so the stopping test, is in float64.
_PRECISE_BELOW = 10.0
# ... and only for X of at least this many entries (32 MiB in float64): below it a float64 pass
# is cheap, and float32 rounding in the line search can cost more iterations than it saves.
_LOW_PRECISION_MIN_ENTRIES = 1 << 22
# Backtracking halvings allowed in float32 before the fit goes on in float64.
_LOW_PRECISION_BACKTRACKS = 10


def _blas_thread_count() -> int:
    """Threads of NumPy's BLAS now (threadpoolctl; 1 if it reports none)."""
    from threadpoolctl import threadpool_info

    return max([int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
               or [1])


def _blas_threads(n: int) -> Any:
    """Context manager limiting NumPy's BLAS to ``n`` threads (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


class _Objective:
    """``J``, its gradient in centred coordinates and the stopping quantity.

    The parameters are ``theta = [W, c]`` (``k`` rows of ``d + 1`` numbers, flattened) with the
    intercept of *centred* features ``c = b + W @ mu``: the logits are ``(X - mu) W^T + c``.
    This is a linear change of variables (``b = c - W @ mu``) with the same optimum; it removes
    the coupling between a column's mean (``year`` ~ 2000) and the intercept. The gradient is
    returned in these coordinates, the stopping quantity ``||grad J||_2`` in the original
    ``(W, b)`` ones. Matrix products run in torch, in one blocked pass over ``X`` per
    evaluation (see ``__call__``).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, l2: np.ndarray, mu: np.ndarray,
                 mixed_precision: bool = False):
        import torch

        self.torch = torch
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        # centred float32 copy for the early iterations (float64 X only; half its memory).
        # Centred, so that a column such as year ~ 2000 keeps its float32 digits for the
        # variation and a constant column is exactly 0.
        self.X32 = None
        if mixed_precision and X.dtype == np.float64 and X.size >= _LOW_PRECISION_MIN_ENTRIES:
            self.X32 = torch.empty(X.shape, dtype=torch.float32)
            for lo in range(0, X.shape[0], 4096):
                self.X32[lo : lo + 4096] = torch.from_numpy(X[lo : lo + 4096] - mu)
        self.low_precision = self.X32 is not None
        self.l2 = torch.from_numpy(l2) if np.any(l2) else None
        self.mu = torch.from_numpy(mu)
        self.n, self.d = X.shape
        self.k = Y.shape[1]
        self.n_evals = 0
        self.n_low_precision_evals = 0
        self.P = torch.empty((self.n, self.k), dtype=torch.float64)  # for the preconditioner

    def split(self, theta: np.ndarray) -> tuple[Any, Any]:
        T = self.torch.from_numpy(theta).view(self.k, self.d + 1)
        return T[:, : self.d], T[:, self.d]

    def to_wb(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W, c = self.split(theta)
        return W.numpy().copy(), (c - W @ self.mu).numpy()

    def from_wb(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.hstack([W, (b + W @ self.mu.numpy())[:, None]]).ravel()

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Return ``J``, its gradient in ``[W, c]`` (flat) and ``||grad J||_2`` in ``(W, b)``.

        One pass over ``X`` in row blocks: each block's logits, probabilities and gradient
        contribution are computed while the block is still in the cache. The products run in
        the storage precision of ``X``, or on the centred float32 copy while ``low_precision``;
        the softmax, the loss and the gradient accumulation are float64.
        """
        torch = self.torch
        self.n_evals += 1
        centred = self.low_precision
        X = self.X32 if centred else self.X
        self.n_low_precision_evals += int(centred)
        W, c = self.split(theta)
        Wt = W.T.to(X.dtype).contiguous()
        shift = c if centred else c - W @ self.mu
        block = max(64, _BLOCK_BYTES // (self.d * X.element_size()))
        loss = 0.0
        gW = torch.zeros((self.k, self.d), dtype=torch.float64)
        gb = torch.zeros(self.k, dtype=torch.float64)
        for lo in range(0, self.n, block):
            Xb, Yb = X[lo : lo + block], self.Y[lo : lo + block]
            Z = (Xb @ Wt).double()
            Z += shift
            lse = torch.logsumexp(Z, dim=1)
            loss += float((lse - (Z * Yb).sum(dim=1)).sum())
            P = self.P[lo : lo + block]
            torch.exp(Z - lse[:, None], out=P)
            R = (P - Yb) / self.n
            gW += (R.T.to(X.dtype) @ Xb).double()
            gb += R.sum(dim=0)
        loss /= self.n
        if centred:  # gW above is the gradient in W at fixed c; in W at fixed b it is:
            gW += torch.outer(gb, self.mu)
        if self.l2 is not None:
            loss += 0.5 * float((self.l2 * W * W).sum())
            gW += self.l2 * W
        gnorm = float(torch.sqrt((gW * gW).sum() + (gb * gb).sum()))
        g = torch.empty((self.k, self.d + 1), dtype=torch.float64)
        g[:, : self.d] = gW - torch.outer(gb, self.mu)
        g[:, self.d] = gb
        return loss, g.numpy().ravel(), gnorm


class _Preconditioner:
    """Inverse of a model of the Hessian, ``H0 = M^{-1}``, applied to each class row.

    ``M = Xa^T diag(w) Xa / n + diag(l2, 0)`` with the augmented centred features
    ``Xa = [X - mu, 1]`` and per-sample curvature weights ``w`` (``max_k p_k (1 - p_k)`` at the
    current probabilities: ``1/K (1 - 1/K)`` at the start). It is formed in float32 (one
    ``syrk``), normalised to unit diagonal (so the ridge that keeps it positive definite when
    ``l2 = 0`` and columns are constant or duplicated is scale free), factorised in float64 and
    inverted once (``cholesky_inverse``): applying it is one ``(k, d+1) @ (d+1, d+1)`` product.
    """

    def __init__(self, X: np.ndarray, mu: np.ndarray, l2: np.ndarray, k: int):
        self.X, self.mu, self.l2, self.k = X, mu, l2, k
        self.n, self.d = X.shape
        self.Minv: Any = None
        self.blas_threads = 1  # NumPy BLAS threads for the syrk (set by the caller)
        self.n_updates, self.setup_time = 0, 0.0

    def update(self, P: Any) -> None:
        """Recompute ``M^{-1}`` with curvature weights from probabilities ``P`` (n, k)."""
        import torch

        t0 = time.perf_counter()
        P = P.numpy() if hasattr(P, "numpy") else np.asarray(P)
        w = (P * (1.0 - P)).max(axis=1)
        keep = w > _ACTIVE * w.max()
        rows = np.flatnonzero(keep) if 0 < keep.sum() < self.n else np.arange(self.n)
        d = self.d
        Xa = np.empty((len(rows), d + 1), dtype=np.float32)
        for i in range(0, len(rows), 1024):
            r = rows[i:i + 1024] if len(rows) < self.n else slice(i, i + 1024)
            sw = np.sqrt(w[r] / self.n)
            Xa[i:i + len(sw), :d] = (self.X[r] - self.mu) * sw[:, None]
            Xa[i:i + len(sw), d] = sw
        with _blas_threads(self.blas_threads):
            A = (Xa.T @ Xa).astype(np.float64)  # numpy dispatches X^T X to syrk
        del Xa
        A[np.arange(d), np.arange(d)] += self.l2
        s = np.sqrt(np.diag(A))
        dead = ~(s > 0)  # constant column with l2 = 0 (or no active sample): identity there
        s[dead] = 1.0
        A /= s[:, None]
        A /= s[None, :]
        A[dead, dead] = 1.0
        tA = torch.from_numpy(A)
        ridge = _RIDGE
        for _ in range(8):
            L, info = torch.linalg.cholesky_ex(tA + ridge * torch.eye(d + 1, dtype=tA.dtype))
            if int(info) == 0:
                break
            ridge *= 100.0
        else:  # pragma: no cover - A is PSD up to rounding, a ridge of 1e10 always works
            raise np.linalg.LinAlgError("preconditioner: Cholesky failed")
        Minv = torch.cholesky_inverse(L)
        ts = torch.from_numpy(s)
        Minv /= ts[:, None]
        Minv /= ts[None, :]
        self.Minv = Minv
        self.n_updates += 1
        self.setup_time += time.perf_counter() - t0

    def __call__(self, *vs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """``M^{-1}`` applied to each class row of each vector; several vectors share one read
        of ``M^{-1}`` (134 MB at PTB-XL scale: the product is bound by memory bandwidth)."""
        import torch

        V = torch.from_numpy(np.concatenate(vs)).view(len(vs) * self.k, self.d + 1)
        out = (V @ self.Minv).numpy().reshape(len(vs), -1)
        return list(out) if len(vs) > 1 else out[0]


def _lbfgs(fun: _Objective, pre: _Preconditioner, theta: np.ndarray, max_iter: int, tol: float,
           memory: int = 10) -> tuple[np.ndarray, float, float, int, list[float], str]:
    """Minimise with preconditioned L-BFGS (two-loop recursion with ``H0 = gamma M^{-1}``).

    With ``fun.low_precision`` set, the iterations run on float32 products until the gradient
    norm falls below ``_PRECISE_BELOW * tol`` (or a line search fails), then the point is
    re-evaluated in float64 and the fit goes on in float64, keeping its L-BFGS pairs: the
    stopping test is only ever passed on a float64 gradient.

    Returns the parameters, final loss, final gradient norm (the stopping quantity), the number
    of iterations (epochs), the loss history and why it stopped (``"tol"``, ``"max_epochs"`` or
    ``"line_search"``: no decrease possible at the working precision).
    """

    def go_precise() -> tuple[float, np.ndarray, float]:
        fun.low_precision = False
        return fun(theta)

    f, g, gnorm = fun(theta)
    if fun.low_precision and gnorm < _PRECISE_BELOW * tol:
        f, g, gnorm = go_precise()
    pre.update(fun.P)
    history = [f]
    S: list[np.ndarray] = []
    Yd: list[np.ndarray] = []
    rho: list[float] = []
    gamma, new_pair = 1.0, False
    it = 0
    while it < max_iter and gnorm >= tol:
        q = g.copy()
        alpha = []
        for s_, y_, r_ in zip(reversed(S), reversed(Yd), reversed(rho), strict=True):
            a = r_ * float(s_ @ q)
            alpha.append(a)
            q -= a * y_
        if new_pair:  # scale gamma = s'y / y'M^-1 y of the newest pair, in the same read of M^-1
            q, my = pre(q, Yd[-1])
            gamma = float(S[-1] @ Yd[-1]) / float(Yd[-1] @ my)
            new_pair = False
        else:
            q = pre(q)
        q *= gamma
        for s_, y_, r_, a in zip(S, Yd, rho, reversed(alpha), strict=True):
            q += (a - r_ * float(y_ @ q)) * s_
        direction = -q
        slope = float(g @ direction)
        if not slope < 0:  # not a descent direction: restart from the preconditioned gradient
            S.clear(), Yd.clear(), rho.clear()
            direction = -pre(g)
            slope = float(g @ direction)
        step = 1.0
        for _ in range(_LOW_PRECISION_BACKTRACKS if fun.low_precision else 40):
            new = theta + step * direction
            f_new, g_new, gnorm_new = fun(new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            if fun.low_precision:  # float32 noise: go on in float64 from the same point
                f, g, gnorm = go_precise()
                continue
            return theta, f, gnorm, it, history, "line_search"  # no decrease at this precision
        s_vec, y_vec = new - theta, g_new - g
        theta, f, g, gnorm = new, f_new, g_new, gnorm_new
        if fun.low_precision and gnorm < _PRECISE_BELOW * tol:
            f, g, gnorm = go_precise()  # the pair below mixes precisions; it is only a model
        history.append(f)
        it += 1
        if it in _REFRESH_AT and gnorm >= tol and it < max_iter:
            pre.update(fun.P)  # curvature weights at the new point; the pairs stay valid
        sy = float(s_vec @ y_vec)
        if sy > 1e-12 * float(y_vec @ y_vec):
            S.append(s_vec), Yd.append(y_vec), rho.append(1.0 / sy)
            if len(S) > memory:
                S.pop(0), Yd.pop(0), rho.pop(0)
            new_pair = True
    return theta, f, gnorm, it, history, ("tol" if gnorm < tol else "max_epochs")


def _gd(fun: _Objective, pre: _Preconditioner, theta: np.ndarray, max_iter: int, tol: float
        ) -> tuple[np.ndarray, float, float, int, list[float], str]:
    """Preconditioned full-batch gradient descent (direction ``-M^{-1} g``), backtracking step."""
    f, g, gnorm = fun(theta)
    pre.update(fun.P)
    history = [f]
    step, it = 1.0, 0
    while it < max_iter and gnorm >= tol:
        direction = -pre(g)
        slope = float(g @ direction)
        for _ in range(40):
            new = theta + step * direction
            f_new, g_new, gnorm_new = fun(new)
            if f_new <= f + 0.5 * step * slope:
                break
            step *= 0.5
        else:
            return theta, f, gnorm, it, history, "line_search"
        theta, f, g, gnorm = new, f_new, g_new, gnorm_new
        history.append(f)
        it += 1
        if it in _REFRESH_AT and gnorm >= tol and it < max_iter:
            pre.update(fun.P)
        step = min(2.0 * step, 1.0)  # let the step grow again, up to the model's Newton step
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
        ``"lbfgs"``: L-BFGS preconditioned by a full-matrix Hessian model (fast, default; see the
        module docstring). ``"gd"``: full-batch gradient descent along the same preconditioned
        direction ``-M^{-1} g`` with a backtracking step (slower; for illustration).
    dtype : numpy dtype
        Storage and matrix-product precision of ``X`` (``np.float64`` or ``np.float32``); the loss,
        gradient accumulation and optimiser state are always float64.
    mixed_precision : bool
        With float64 ``X`` of at least 4M entries and the L-BFGS solver: run the early
        iterations' matrix products on a centred float32 copy of ``X`` (half its memory again;
        each pass over ``X`` about twice as fast), until the gradient norm is below ``10 * tol``
        (or a line search stalls on float32 rounding), then finish in float64. The stopping test
        is always passed on a float64 gradient, so the optimum is the same; ``False`` keeps every
        product in float64.
    random_state : int
        Kept for scikit-learn conventions; the fit is deterministic (zero initialisation).

    Attributes
    ----------
    coef_ : ndarray (n_classes, n_features)
    intercept_ : ndarray (n_classes,)
    classes_ : ndarray (n_classes,)
    n_epochs_ : int
        Iterations run.
    n_loss_evaluations_ : int
        Loss and gradient evaluations (one per iteration plus line-search backtracks).
    n_low_precision_evaluations_ : int
        How many of them used float32 products (``mixed_precision``).
    n_preconditioner_updates_ : int
        Builds of the Hessian model ``M`` (the first one plus rebuilds).
    preconditioner_time_ : float
        Seconds of ``fit_time_`` spent building and inverting ``M``.
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
                 dtype: Any = np.float64, mixed_precision: bool = True, random_state: int = 0):
        self.max_epochs = max_epochs
        self.tol = tol
        self.l2 = l2
        self.standardize = standardize
        self.solver = solver
        self.dtype = dtype
        self.mixed_precision = mixed_precision
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
        # the penalty l2/2 ||W * scale||^2: scale = 1 (raw weights) or the feature std
        # (standardised weights, identical to fitting on standardised X)
        scale = np.where(std > 0, std, 1.0) if self.standardize else np.ones(d)
        l2 = self.l2 * scale**2
        problem = _Objective(X, Y, l2, mu,
                             mixed_precision=bool(self.mixed_precision) and self.solver == "lbfgs")
        pre = _Preconditioner(X, mu, l2, k)
        theta0 = np.zeros(k * (d + 1))
        run = _lbfgs if self.solver == "lbfgs" else _gd
        # NumPy's BLAS (OpenBLAS) threads spin after each multi-threaded call, such as the
        # optimiser's dot products of 20,000-long vectors, and then compete for the cores with
        # torch's threads in the next loss evaluation: measured 2x slower evaluations on 2 cores.
        # The optimiser's NumPy work is single threaded; the preconditioner's syrk gets the
        # threads back.
        pre.blas_threads = _blas_thread_count()
        with _blas_threads(1):
            theta, loss, gnorm, n_it, hist, reason = run(problem, pre, theta0,
                                                         int(self.max_epochs), self.tol)
        W, b = problem.to_wb(theta)
        self.coef_, self.intercept_ = W, b
        self.n_epochs_, self.grad_norm_, self.loss_ = n_it, gnorm, loss
        self.loss_curve_ = hist
        self.n_loss_evaluations_ = problem.n_evals
        self.n_low_precision_evaluations_ = problem.n_low_precision_evals
        self.n_preconditioner_updates_ = pre.n_updates
        self.preconditioner_time_ = pre.setup_time
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
