"""Optimiser machinery of :class:`~fusion_utils.fusion.softmax.SoftmaxClassifier` (private).

The blocked loss-and-gradient evaluation (:class:`_Objective`), the Hessian model used as a
preconditioner (:class:`_Preconditioner`) and the two solvers that use it (:func:`_lbfgs`,
:func:`_gd`). Why each piece exists, and what it costs, is explained in the docstring of
:mod:`fusion_utils.fusion.softmax`; the paper-faithful MATLAB solver is in
:mod:`fusion_utils.fusion._scg`.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

# Iterations after which the preconditioner is rebuilt with the current curvature weights
# (geometric: each rebuild costs about as much as 10-20 loss evaluations at PTB-XL scale).
_REFRESH_AT = (20, 60, 180, 540, 1620)
# preconditioner="auto": iterations after which the diagonal model's progress is judged, and the
# full model is built if the gradient norm, at the rate seen so far, would need more than
# _SLOW_FACTOR times the iterations already run to reach tol (see _lbfgs).
_CHECK_AT = (10, 20, 40, 80, 160, 320, 640, 1280)
_SLOW_FACTOR = 3.0
# preconditioner="auto" builds the full model from the start when its syrk (n * d**2 multiply-
# adds) is below this: about a second on 2 cores, less than the iterations a diagonal start can
# cost on correlated CNN features (real PTB-XL, 1,073 x 1,284: 123 s diagonal-first, 10 s full).
_CHEAP_FULL_MODEL = 2e10


def _full_model_is_cheap(n: int, d: int) -> bool:
    """Whether the full Hessian model of an ``n x d`` problem costs about a second to build."""
    return float(n) * float(d + 1) ** 2 <= _CHEAP_FULL_MODEL
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
# Every this many loss evaluations, one runs with the other torch thread count (1 or all), and
# the faster count is kept (see _Objective._threads_for_this_call).
_THREAD_TRIAL = 50
# The full Hessian model of at most this many columns is built (syrk, Cholesky, inverse) with
# one thread: on cores shared with other processes each parallel region of these mid-sized
# factorisations waits for a descheduled worker (on 2 busy cores, 3,000 x 1,011: 7 s a build
# with 2 threads, 1 s with one; 7,011 x 1,281: 26-39 s against 2.4-2.8 s), and the rounding does
# not depend on the load, so the fit stays deterministic. Larger models (PTB-XL's 4,107) use
# NumPy's BLAS threads, whose work per parallel region is large enough to pay for the wait.
_MODEL_THREADS_ABOVE = 2048
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
        with warnings.catch_warnings():  # X is only read, so a read-only (memmap) X is fine
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)
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
        self.max_threads = max(1, int(torch.get_num_threads()))
        self.threads = self.max_threads
        self._timed: dict[int, list[float]] = {1: [], self.max_threads: []}
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
        the softmax, the loss and the gradient accumulation are float64. The logits are a torch
        product (``X_b W^T``); the gradient product ``R_b^T X_b`` is NumPy's (OpenBLAS, held to
        one thread by the caller): for ``K`` rows on the left it is 2-3x faster than torch's.
        """
        torch = self.torch
        self.n_evals += 1
        threads = self._threads_for_this_call()
        t0 = time.perf_counter()
        previous = torch.get_num_threads()
        if threads != previous:
            torch.set_num_threads(threads)
        try:
            out = self._evaluate(theta)
        finally:
            if threads != previous:
                torch.set_num_threads(previous)
        self._timed[threads].append(time.perf_counter() - t0)
        return out

    def _threads_for_this_call(self) -> int:
        """Torch threads for this evaluation (see ``_THREAD_TRIAL``).

        On a machine whose cores are shared (other processes, ``nice``), each of torch's parallel
        regions waits for a descheduled worker: measured 3x slower evaluations with 2 threads
        than with 1 on 2 busy cores, and 1.5x faster on idle ones. So the evaluation times one
        call with each thread count, keeps the faster, and tries the other one again every
        ``_THREAD_TRIAL`` evaluations. Torch's products give the same bits with any thread count,
        so the choice changes the time, not the result.
        """
        if self.max_threads <= 1:
            return 1
        if self.n_evals == 2:
            return 1
        if self.n_evals == 3:
            return self.max_threads
        if self.n_evals % _THREAD_TRIAL == 0:  # try the other one again
            return self.max_threads if self.threads == 1 else 1
        if self.n_evals % _THREAD_TRIAL == 1 or self.n_evals == 4:
            one, many = self._timed[1][-1:], self._timed[self.max_threads][-1:]
            if one and many:
                self.threads = 1 if one[0] <= many[0] else self.max_threads
        return self.threads

    def _evaluate(self, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
        torch = self.torch
        centred = self.low_precision
        X = self.X32 if centred else self.X
        Xn = X.numpy()
        self.n_low_precision_evals += int(centred)
        W, c = self.split(theta)
        Wt = W.T.to(X.dtype).contiguous()
        shift = c if centred else c - W @ self.mu
        block = max(64, _BLOCK_BYTES // (self.d * X.element_size()))
        loss = 0.0
        gW = np.zeros((self.k, self.d))
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
            gW += R.numpy().T.astype(Xn.dtype) @ Xn[lo : lo + block]
            gb += R.sum(dim=0)
        gW = torch.from_numpy(gW)
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

    def __init__(self, X: np.ndarray, mu: np.ndarray, l2: np.ndarray, k: int,
                 mode: str = "full"):
        if mode not in ("full", "diagonal", "auto"):
            raise ValueError(f"preconditioner={mode!r}: expected 'auto', 'full' or 'diagonal'")
        self.X, self.mu, self.l2, self.k, self.mode = X, mu, l2, k, mode
        self.n, self.d = X.shape
        self.Minv: Any = None
        self.full = mode == "full"  # the model in use: full matrix (True) or its diagonal
        self.blas_threads = 1  # NumPy BLAS threads for the syrk (set by the caller)
        self.n_updates, self.n_full_updates, self.setup_time = 0, 0, 0.0
        self.full_from: int | None = 0 if self.full else None  # iteration of the first full build

    def update(self, P: Any) -> None:
        """Recompute ``M^{-1}`` with curvature weights from probabilities ``P`` (n, k)."""
        P = P.numpy() if hasattr(P, "numpy") else np.asarray(P)
        w = (P * (1.0 - P)).max(axis=1)
        if self.full:
            self._update_full(w)
        else:
            self._update_diagonal(w)

    def _update_diagonal(self, w: np.ndarray) -> None:
        """``M^{-1}`` of the diagonal of ``M`` (Jacobi): one pass over ``X``, no factorisation."""
        t0 = time.perf_counter()
        d = self.d
        diag = np.empty(d + 1)
        acc = np.zeros(d)
        for lo in range(0, self.n, 1024):
            Xc = self.X[lo : lo + 1024] - self.mu
            acc += (w[lo : lo + 1024] / self.n) @ (Xc * Xc)
        diag[:d] = acc + self.l2
        diag[d] = w.sum() / self.n
        diag[~(diag > 0)] = 1.0  # constant column with l2 = 0: identity there
        self.Minv = 1.0 / diag
        self.n_updates += 1
        self.setup_time += time.perf_counter() - t0

    def _update_full(self, w: np.ndarray) -> None:
        import torch

        t0 = time.perf_counter()
        keep = w > _ACTIVE * w.max()
        rows = np.flatnonzero(keep) if 0 < keep.sum() < self.n else np.arange(self.n)
        d = self.d
        Xa = np.empty((len(rows), d + 1), dtype=np.float32)
        for i in range(0, len(rows), 1024):
            r = rows[i:i + 1024] if len(rows) < self.n else slice(i, i + 1024)
            sw = np.sqrt(w[r] / self.n)
            Xa[i:i + len(sw), :d] = (self.X[r] - self.mu) * sw[:, None]
            Xa[i:i + len(sw), d] = sw
        # one thread for a model of up to _MODEL_THREADS_ABOVE columns (see there)
        threads = self.blas_threads if d + 1 > _MODEL_THREADS_ABOVE else 1
        with _blas_threads(max(1, threads)):
            A = (Xa.T @ Xa).astype(np.float64)  # numpy dispatches X^T X to syrk
        del Xa
        A[np.arange(d), np.arange(d)] += self.l2
        s = np.sqrt(np.diag(A))
        dead = ~(s > 0)  # constant column with l2 = 0 (or no active sample): identity there
        s[dead] = 1.0
        A /= s[:, None]
        A /= s[None, :]
        A[dead, dead] = 1.0
        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, min(previous, threads)))
        try:
            Minv = self._factorise(A)
        finally:
            torch.set_num_threads(previous)
        ts = torch.from_numpy(s)
        Minv /= ts[:, None]
        Minv /= ts[None, :]
        self.Minv = Minv
        self.n_updates += 1
        self.n_full_updates += 1
        self.setup_time += time.perf_counter() - t0

    @staticmethod
    def _factorise(A: np.ndarray) -> Any:
        """``(A + ridge I)^{-1}`` of the unit-diagonal model by Cholesky (torch), with the
        smallest ridge of 1e-6, 1e-4, ... that makes the factorisation succeed."""
        import torch

        d1 = A.shape[0]
        tA = torch.from_numpy(A)
        ridge = _RIDGE
        for _ in range(8):
            L, info = torch.linalg.cholesky_ex(tA + ridge * torch.eye(d1, dtype=tA.dtype))
            if int(info) == 0:
                break
            ridge *= 100.0
        else:  # pragma: no cover - A is PSD up to rounding, a ridge of 1e10 always works
            raise np.linalg.LinAlgError("preconditioner: Cholesky failed")
        return torch.cholesky_inverse(L)

    def __call__(self, *vs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """``M^{-1}`` applied to each class row of each vector; several vectors share one read
        of ``M^{-1}`` (134 MB at PTB-XL scale: the product is bound by memory bandwidth)."""
        import torch

        if not self.full:
            out = np.stack(vs).reshape(len(vs) * self.k, self.d + 1) * self.Minv
            out = out.reshape(len(vs), -1)
            return list(out) if len(vs) > 1 else out[0]
        V = torch.from_numpy(np.concatenate(vs)).view(len(vs) * self.k, self.d + 1)
        out = (V @ self.Minv).numpy().reshape(len(vs), -1)
        return list(out) if len(vs) > 1 else out[0]


def _slow(gnorms: list[float], tol: float, it: int) -> bool:
    """Whether, at the rate seen so far, reaching ``tol`` would take more than
    ``_SLOW_FACTOR * it`` further iterations (the rate is the geometric mean decrease of the
    gradient norm per iteration, from the start to the smallest norm so far)."""
    g0, gbest = gnorms[0], min(gnorms)
    if not (g0 > 0 and gbest > 0) or gbest < tol:
        return False
    rate = (gbest / g0) ** (1.0 / it)
    if rate >= 1.0:
        return True
    return float(np.log(tol / gbest) / np.log(rate)) > _SLOW_FACTOR * it


def _lbfgs(fun: _Objective, pre: _Preconditioner, theta: np.ndarray, max_iter: int, tol: float,
           memory: int = 10) -> tuple[np.ndarray, float, float, int, list[float], str]:
    """Minimise with preconditioned L-BFGS (two-loop recursion with ``H0 = gamma M^{-1}``).

    With ``fun.low_precision`` set, the iterations run on float32 products until the gradient
    norm falls below ``_PRECISE_BELOW * tol`` (or a line search fails), then the point is
    re-evaluated in float64 and the fit goes on in float64, keeping its L-BFGS pairs: the
    stopping test is only ever passed on a float64 gradient.

    With ``pre.mode == "auto"`` the model starts diagonal and is replaced by the full one at
    the first of ``_CHECK_AT`` where :func:`_slow` finds the progress too slow.

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
    history_g = [gnorm]
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
        history_g.append(gnorm)
        it += 1
        if gnorm >= tol and it < max_iter:
            if not pre.full and it in _CHECK_AT and _slow(history_g, tol, it):
                pre.full, pre.full_from = True, it  # the diagonal model is not enough: build M
                pre.update(fun.P)
                new_pair = bool(S)  # rescale gamma against the new model
            elif it in _REFRESH_AT:
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
