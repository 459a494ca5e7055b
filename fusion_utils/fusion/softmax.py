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

When the full model is built (``preconditioner="auto"``, the default)
----------------------------------------------------------------------
Building ``M`` costs a ``syrk`` over the retained records and a ``(d+1)^3`` factorisation: at
15,000 x 4,106 as much as 10-40 loss evaluations, which a well-conditioned problem (standard
Gaussian features) never earns back: there scikit-learn's plain L-BFGS needed 6.5 s where
always building ``M`` took 14.3 s. So the fit starts with the diagonal of ``M`` (Jacobi; built
in one pass over ``X``, together with the exact centring above, which already removes the
scale of a column such as ``year``) and judges progress after 10, 20, 40, ... iterations: when
the gradient norm, at the geometric rate seen so far, would need more than three times the
iterations already run to reach ``tol``, the full model is built and refreshed as below; on a
well-conditioned problem it never is. ``"full"`` and ``"diagonal"`` force one model.
``benchmarks/bench_softmax.py --quick`` (3,000 x 1,010, 2 shared cores), before the thread
changes below: well conditioned 0.94x scikit-learn's time (full model never built), badly
scaled 9.0x faster, real PTB-XL EfficientNet-Lite0 features 16x faster (full model from
iteration 10); at full size (15,000 x 4,106 Gaussian) the well-conditioned case was 0.79x:
121 iterations against its 70, with a stricter stopping rule (its objective 1.8e-5 higher).
The benchmark now compares at equal accuracy (objectives within 1e-6 relative; the less
accurate solver is refitted at a smaller tol). After the thread changes, on 2 cores shared
with other jobs (load average 13-17, same run, scikit-learn with 2 BLAS threads): well
conditioned 2.3x faster (57 iterations each, objectives 4e-7 apart), badly scaled 38x faster
(scikit-learn at its 2000-iteration budget, objective 20% higher), real PTB-XL
EfficientNet-Lite0 features (1,073 x 1,280) 61x faster (objectives 2e-7 apart). The full-size
well-conditioned case has not been re-measured since.

Paper-faithful training (``solver="trainscg"``)
-----------------------------------------------
MATLAB's ``trainSoftmaxLayer`` (the paper's classifier) is reproduced as it runs, not as an
optimum: scaled conjugate gradient (``fusion_utils.fusion._scg``, a transcription of
``trainscg.m``) from zero weights on the ``N K``-normalised cross-entropy, no penalty, no input
scaling, 2000 epochs or gradient norm 1e-6. See :class:`SoftmaxClassifier`.

How a loss evaluation is made cheap
-----------------------------------
At PTB-XL scale an evaluation is bound by memory bandwidth: ``X`` (492 MB in float64) is read
for the logits and again for the gradient. Three things cut that cost, none of which changes
the optimum or the stopping test:

* **One pass in row blocks** of about 16 MiB: each block's logits, probabilities and gradient
  contribution are computed while the block is still in the cache (the logits ``X_b W^T`` by
  torch, 2-4x faster than NumPy's OpenBLAS for a right-hand side of ``K`` columns; the gradient
  ``R_b^T X_b`` by NumPy, 2-3x faster than torch for ``K`` rows on the left).
* **Mixed precision** (``mixed_precision=True``, large float64 ``X`` only): the early
  iterations read a centred float32 copy of ``X``, half the bytes; once the gradient norm is
  below ``10 tol`` (or a line search stalls on float32 rounding) the point is re-evaluated in
  float64 and the fit finishes in float64, so the final gradient, and the stopping test, are
  float64.
* **No thread contention**: NumPy's BLAS is held to one thread while the optimiser runs (its
  threads otherwise spin after each dot product and take the cores from torch's threads in the
  next evaluation: measured 2x slower evaluations on 2 cores). Torch's threads are chosen by
  measurement: on cores shared with other processes (or under ``nice``) every parallel region
  waits for a descheduled worker thread, which made an evaluation 3x slower with 2 threads than
  with 1 (real HAM10000 features, 7,011 x 1,280, 2 busy cores), so the evaluation times one call
  with one thread and one with all, keeps the faster and re-tries the other every 50 calls.
  Torch's products give the same bits with any thread count, so the fit stays deterministic.

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
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.fusion import _optim
from fusion_utils.fusion._scg import trainscg

__all__ = ["SoftmaxClassifier", "sklearn_C", "softmax"]

_SOLVERS = ("lbfgs", "gd", "trainscg")
_PRECONDITIONERS = ("auto", "full", "diagonal")
# solver="trainscg": X of at least this many entries is evaluated by the blocked torch objective
# of fusion/_optim; smaller ones directly in NumPy.
_MATLAB_PERF_TORCH_MIN = 1 << 22


def sklearn_C(l2: float, n_samples: int) -> float:
    """scikit-learn's ``C`` for the same penalty: ``C = 1 / (l2 * n_samples)`` (``inf`` for 0)."""
    return float("inf") if l2 == 0 else 1.0 / (l2 * n_samples)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable (the row maximum is subtracted first)."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class _MatlabPerf:
    """``trainSoftmaxLayer``'s performance and its gradient over ``theta = [W, b]`` (flat).

    ``perf = sum_{n,k} -t_kn log y_kn / (N K)``: MATLAB's ``crossentropy`` averages over all
    ``N K`` target elements (its documentation: "perf = sum(ce(:))/numel(ce)"), which is the
    usual per-sample mean divided by ``K``. No penalty (``regularization`` 0), no input
    processing. Evaluated with the blocked :class:`~fusion_utils.fusion._optim._Objective` on
    uncentred features (``mu = 0``, so its intercept is ``b`` itself), divided by ``K``.
    MATLAB clamps ``y`` to ``[eps, 1 - eps]`` in the loss; that is not copied (it changes the
    loss by at most ``eps`` per sample).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray):
        n, d = X.shape
        self.k = Y.shape[1]
        self.n_evals = 0
        if X.size >= _MATLAB_PERF_TORCH_MIN:
            self.obj = _optim._Objective(X, Y, np.zeros(d), np.zeros(d), mixed_precision=False)
        else:  # small problems: NumPy directly (torch's per-call overhead would dominate)
            self.obj = None
            self.Xa = np.hstack([X.astype(np.float64), np.ones((n, 1))])
            self.Y = Y

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evals += 1
        if self.obj is not None:
            loss, grad, _ = self.obj(theta)
            return loss / self.k, grad / self.k
        n = self.Xa.shape[0]
        Z = self.Xa @ theta.reshape(self.k, -1).T
        Z -= Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(Z).sum(axis=1))
        loss = float((lse - (Z * self.Y).sum(axis=1)).sum()) / (n * self.k)
        R = (np.exp(Z - lse[:, None]) - self.Y) / (n * self.k)
        return loss, (R.T @ self.Xa).ravel()


class SoftmaxClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression trained full batch (the paper's softmax classifier).

    Two ways to train it (``solver``):

    * ``"lbfgs"`` (default): preconditioned L-BFGS on the mean cross-entropy plus an optional
      L2 penalty, run to the gradient tolerance (see the module docstring). This is the default
      because it reaches the optimum of a stated objective: with ``l2 > 0`` the weights are
      unique and do not depend on the optimiser, its budget or the feature scales, so results
      can be compared across runs and with scikit-learn.
    * ``"trainscg"``: the paper's training as MATLAB R2021a's ``trainSoftmaxLayer`` runs it:
      scaled conjugate gradient (Moller 1993) exactly as ``trainscg`` iterates it
      (:mod:`fusion_utils.fusion._scg`; ``sigma = 5e-5``, ``lambda = 5e-7``, ``min_grad = tol``
      = 1e-6, ``epochs = max_epochs`` = 2000 as the paper states), on ``trainSoftmaxLayer``'s
      loss: cross-entropy summed over samples and classes divided by ``N K`` (MATLAB's
      ``crossentropy``, https://mathworks.com/help/deeplearning/ref/crossentropy.html), no
      penalty, from all-zero weights and biases (a bare ``network``'s weights have no
      ``initFcn``; ``configure`` sets them to zeros), with no input scaling (no
      ``mapminmax``/``removeconstantrows``), every sample training (``divideFcn =
      'dividetrain'``, so no validation stop). Sources: https://mathworks.com/help/deeplearning/ref/trainsoftmaxlayer.html,
      https://mathworks.com/help/deeplearning/ref/trainscg.html and MathWorks'
      ``trainSoftmaxLayer.m``/``trainscg.m``. With unpenalised, nearly separable features the
      loss has no finite minimum, so these weights are where the 2000-epoch budget leaves
      them: use it to reproduce the paper's numbers, not as "the" optimum. ``l2`` must be 0
      and ``standardize`` False (``trainSoftmaxLayer`` has neither). Stopping at the epoch
      budget is the method, so it raises no ``ConvergenceWarning``.

    Parameters
    ----------
    max_epochs : int
        Maximum number of iterations over the full training set (the paper: 2000).
    tol : float
        Stop when the Euclidean norm of the gradient of the mean objective falls below ``tol``
        (the paper: 1e-6). See the module docstring for why the mean, not the sum. With
        ``solver="trainscg"`` it is MATLAB's ``min_grad``, tested (``<=``) on the gradient of
        the ``N K``-normalised loss.
    l2 : float
        L2 penalty ``l2 / 2 * ||W||^2`` on the weights (not the intercept), added to the mean
        cross-entropy. ``0`` is the paper's setting. scikit-learn's ``C = 1 / (l2 * n)``.
    standardize : bool
        If True, features are standardised with the training mean and std before fitting and the
        penalty acts on the standardised weights (a *different* model when ``l2 > 0``). ``coef_``
        is always reported on the original feature scale. Off by default, as in the paper.
    solver : {"lbfgs", "gd", "trainscg"}
        ``"lbfgs"``: L-BFGS preconditioned by a Hessian model (fast, default; see the module
        docstring). ``"gd"``: full-batch gradient descent along the full-matrix preconditioned
        direction ``-M^{-1} g`` with a backtracking step (slower; for illustration).
        ``"trainscg"``: MATLAB's training, as above.
    preconditioner : {"auto", "full", "diagonal"}
        Hessian model of ``"lbfgs"``. ``"full"``: the full-matrix model from the start.
        ``"diagonal"``: its diagonal only (one pass over ``X`` to build). ``"auto"``
        (default): the full model from the start when it is cheap to build (``n * d**2`` below
        about 2e10, e.g. the paper's 1,280-feature networks on up to ~10,000 training samples,
        where it is built in about a second); otherwise start with the diagonal and build the
        full model only when the gradient norm, at the rate seen after 10, 20, 40, ...
        iterations, would need more than three times the iterations already run to reach
        ``tol`` (a large well-conditioned problem never pays for the full model). On real
        PTB-XL fused features (1,073 x 1,284) the diagonal start took 12x longer than "full".
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
        Iterations run (with ``"trainscg"``: MATLAB's epochs, rejected steps included).
    n_loss_evaluations_ : int
        Loss and gradient evaluations (one per iteration plus line-search backtracks; with
        ``"trainscg"`` two per accepted epoch, for the Hessian-vector product).
    n_low_precision_evaluations_ : int
        How many of them used float32 products (``mixed_precision``).
    n_preconditioner_updates_ : int
        Builds of the Hessian model (the first one plus rebuilds, diagonal or full).
    n_full_preconditioner_updates_ : int
        How many of them built the full matrix.
    full_preconditioner_from_ : int or None
        Iteration at which the full matrix was first built (0 with ``"full"``; None if never).
    preconditioner_time_ : float
        Seconds of ``fit_time_`` spent building and inverting ``M``.
    grad_norm_ : float
        Gradient norm at the end (compare with ``tol``).
    loss_ : float
        Final value of the objective ``J`` (``"trainscg"``: MATLAB's ``perf``, ``J / K``).
    loss_curve_ : list of float
        The objective after each epoch (first entry: at initialisation).
    converged_ : bool
        ``grad_norm_ < tol`` (``"trainscg"``: the minimum gradient was reached).
    stop_reason_ : str
        ``"tol"`` (gradient threshold), ``"max_epochs"`` (epoch limit), ``"line_search"`` (no
        further decrease possible) or, ``"trainscg"`` only, ``"goal"`` (loss 0).
    fit_time_ : float
        Seconds spent in ``fit``.
    feature_std_ : ndarray (n_features,)
        Per-feature standard deviation of the training matrix (for standardised weights).
    """

    def __init__(self, max_epochs: int = 2000, tol: float = 1e-6, l2: float = 0.0,
                 standardize: bool = False, solver: str = "lbfgs",
                 preconditioner: str = "auto", dtype: Any = np.float64,
                 mixed_precision: bool = True, random_state: int = 0):
        self.max_epochs = max_epochs
        self.tol = tol
        self.l2 = l2
        self.standardize = standardize
        self.solver = solver
        self.preconditioner = preconditioner
        self.dtype = dtype
        self.mixed_precision = mixed_precision
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver={self.solver!r}: expected one of {', '.join(_SOLVERS)}")
        if self.preconditioner not in _PRECONDITIONERS:
            raise ValueError(f"preconditioner={self.preconditioner!r}: expected one of "
                             f"{', '.join(_PRECONDITIONERS)}")
        if np.dtype(self.dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype={self.dtype!r}: pass np.float64 or np.float32")
        if not (isinstance(self.max_epochs, int | np.integer) and self.max_epochs >= 0):
            raise ValueError(f"max_epochs={self.max_epochs!r}: pass a non-negative integer")
        if not self.tol >= 0 or not self.l2 >= 0:
            raise ValueError(f"tol={self.tol!r}, l2={self.l2!r}: both must be >= 0")
        if self.solver == "trainscg" and (self.l2 != 0 or self.standardize):
            raise ValueError(
                f"solver='trainscg' with l2={self.l2!r}, standardize={self.standardize!r}: "
                "MATLAB's trainSoftmaxLayer has no penalty and no input scaling; pass l2=0 and "
                "standardize=False (standardise the columns yourself to study scaling)")

    def fit(self, X: Any, y: Any) -> SoftmaxClassifier:
        """Fit on ``X`` (n, d) and labels ``y`` (n,); returns ``self``."""
        keep_freed_memory()  # large blocks: no mmap/munmap per batch
        self._check_params()
        t0 = time.perf_counter()
        X, y = validate_data(self, X, y, dtype=np.dtype(self.dtype), order="C")
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:  # scikit-learn's wording ("1 class"), which its checks expect
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, but "
                             f"the data contains only 1 class: {classes[0]!r}")
        self.classes_ = classes
        n, d = X.shape
        k = len(self.classes_)
        Y = np.zeros((n, k))
        Y[np.arange(n), y_idx] = 1.0
        mu = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        self.feature_std_ = std
        # NumPy's BLAS (OpenBLAS) threads spin after each multi-threaded call, such as the
        # optimiser's dot products of 20,000-long vectors, and then compete for the cores with
        # torch's threads in the next loss evaluation: measured 2x slower evaluations on 2 cores.
        # The optimiser's NumPy work is single threaded; the preconditioner's syrk gets the
        # threads back.
        blas_threads = _optim._blas_thread_count()
        if self.solver == "trainscg":
            with _optim._blas_threads(1):
                self._fit_trainscg(X, Y)
            self.fit_time_ = time.perf_counter() - t0
            return self
        # the penalty l2/2 ||W * scale||^2: scale = 1 (raw weights) or the feature std
        # (standardised weights, identical to fitting on standardised X)
        scale = np.where(std > 0, std, 1.0) if self.standardize else np.ones(d)
        l2 = self.l2 * scale**2
        problem = _optim._Objective(
            X, Y, l2, mu, mixed_precision=bool(self.mixed_precision) and self.solver == "lbfgs")
        mode = "full" if self.solver == "gd" else self.preconditioner
        if mode == "auto" and _optim._full_model_is_cheap(n, d):
            mode = "full"  # building it costs less than a few loss evaluations: never gamble
        pre = _optim._Preconditioner(X, mu, l2, k, mode=mode)
        theta0 = np.zeros(k * (d + 1))
        run = _optim._lbfgs if self.solver == "lbfgs" else _optim._gd
        pre.blas_threads = blas_threads
        with _optim._blas_threads(1):
            theta, loss, gnorm, n_it, hist, reason = run(problem, pre, theta0,
                                                         int(self.max_epochs), self.tol)
        W, b = problem.to_wb(theta)
        self.coef_, self.intercept_ = W, b
        self.n_epochs_, self.grad_norm_, self.loss_ = n_it, gnorm, loss
        self.loss_curve_ = hist
        self.n_loss_evaluations_ = problem.n_evals
        self.n_low_precision_evaluations_ = problem.n_low_precision_evals
        self.n_preconditioner_updates_ = pre.n_updates
        self.n_full_preconditioner_updates_ = pre.n_full_updates
        self.full_preconditioner_from_ = pre.full_from
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

    def _fit_trainscg(self, X: np.ndarray, Y: np.ndarray) -> None:
        """MATLAB's ``trainSoftmaxLayer``: ``trainscg`` from zeros on the ``N K``-mean loss."""
        d, k = X.shape[1], Y.shape[1]
        perf = _MatlabPerf(X, Y)
        res = trainscg(perf, np.zeros(k * (d + 1)), epochs=int(self.max_epochs),
                       min_grad=float(self.tol))
        T = res.x.reshape(k, d + 1)
        self.coef_, self.intercept_ = T[:, :d].copy(), T[:, d].copy()
        self.n_epochs_, self.grad_norm_, self.loss_ = res.epochs, res.gradient, res.perf
        self.loss_curve_ = res.perf_history
        self.n_loss_evaluations_ = res.n_evaluations
        self.n_low_precision_evaluations_ = 0
        self.n_preconditioner_updates_ = self.n_full_preconditioner_updates_ = 0
        self.full_preconditioner_from_ = None
        self.preconditioner_time_ = 0.0
        self.stop_reason_ = {"min_grad": "tol", "epochs": "max_epochs"}.get(res.stop_reason,
                                                                              res.stop_reason)
        self.converged_ = res.stop_reason == "min_grad"

    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``X W^T + b``, shape (n, n_classes); with two classes, as scikit-learn's
        classifiers, the score of ``classes_[1]``: the logit difference, shape (n,)."""
        z = self._logits(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (Eq. 4), shape (n, n_classes), columns in ``classes_`` order."""
        return softmax(self._logits(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        z = self._logits(X)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row."""
        z = self._logits(X)  # checks that the estimator is fitted before reading classes_
        return self.classes_[np.argmax(z, axis=1)]

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
