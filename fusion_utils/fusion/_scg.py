"""Scaled conjugate gradient as MATLAB's ``trainscg`` runs it (private; used by
``solver="trainscg"``).

Moller's scaled conjugate gradient (M. F. Moller, "A scaled conjugate gradient algorithm for fast
supervised learning", *Neural Networks* 6(4):525-533, 1993) in the form of MathWorks'
``trainscg.m`` (Deep Learning Toolbox, "Copyright 1992-2014", the version shipped with R2021a;
documentation: https://mathworks.com/help/deeplearning/ref/trainscg.html). Defaults are MATLAB's:
``sigma = 5e-5`` (step for the finite-difference Hessian-vector product), ``lambda = 5e-7``
(initial scale of the Levenberg-Marquardt-like regulariser), ``min_grad = 1e-6``, ``goal = 0``;
``epochs`` is the caller's budget (``trainSoftmaxLayer``'s ``MaxEpochs``; the paper: 2000).
MATLAB's quirks are kept on purpose, because they decide the weights after a fixed budget:

* every iteration counts as an epoch, including one whose step is rejected;
* the direction is restarted (``p = r``) on a successful step when ``rem(epoch, L) == 1`` with
  ``L`` the number of parameters, i.e. at epoch 1 and every ``L`` epochs after; otherwise Moller's
  ``beta = (r'r - r'r_old) / mu``;
* after a success ``lambda`` is raised (when ``Delta < 0.25``) with the *new* ``|p|^2``;
* a rejected step keeps the Hessian-vector product of the last success and only rescales
  ``delta``;
* the stopping tests run before each iteration, in MATLAB's order: ``perf <= goal``,
  ``epoch == epochs``, ``gradient <= min_grad`` (``gradient`` is the Euclidean norm of the
  gradient of the *normalised* performance).

Validation stopping (``max_fail``) is not implemented: ``trainSoftmaxLayer`` uses
``divideFcn = 'dividetrain'`` (every sample trains, no validation set), so it never triggers.
The network MATLAB returns is the best by training performance, which with accepted steps that
never increase the performance is the last accepted point (equal-performance ties aside).

Not ``scipy.optimize``: SciPy has no scaled conjugate gradient, and MATLAB's exact iteration is
the point here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SCGResult", "trainscg"]


@dataclass
class SCGResult:
    """Outcome of :func:`trainscg`.

    Attributes
    ----------
    x : numpy.ndarray
        Parameters at the end (the last accepted point).
    perf : float
        Performance (loss) at ``x``.
    gradient : float
        Euclidean norm of the gradient at ``x``.
    epochs : int
        Iterations run (rejected steps included), as MATLAB's ``tr.num_epochs``.
    stop_reason : str
        ``"min_grad"`` (MATLAB: "Minimum gradient reached"), ``"epochs"`` ("Maximum epoch
        reached") or ``"goal"`` ("Performance goal met").
    perf_history : list of float
        Performance before the first epoch and after each epoch (unchanged after a rejected step).
    accepted : list of bool
        Per epoch, whether its step was accepted.
    n_evaluations : int
        Gradient evaluations (two per successful epoch, one per rejected one, plus the first).
    """

    x: np.ndarray
    perf: float
    gradient: float
    epochs: int
    stop_reason: str
    perf_history: list[float] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    n_evaluations: int = 0


def trainscg(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
             epochs: int = 1000, min_grad: float = 1e-6, goal: float = 0.0,
             sigma: float = 5.0e-5, lam: float = 5.0e-7) -> SCGResult:
    """Minimise ``fun`` from ``x0`` with MATLAB's ``trainscg`` iteration.

    Parameters
    ----------
    fun : callable
        ``x -> (perf, gradient)``; the gradient is that of ``perf`` (MATLAB's ``gWB`` is its
        negative, which is why the updates below subtract where ``trainscg.m`` adds).
    x0 : numpy.ndarray
        Start (``trainSoftmaxLayer``: all zeros).
    epochs, min_grad, goal, sigma, lam : float
        MATLAB's ``trainParam.epochs``, ``min_grad``, ``goal``, ``sigma`` and ``lambda``.

    Returns
    -------
    SCGResult
    """
    x = np.array(x0, dtype=np.float64)
    perf, g = fun(x)
    n_eval = 1
    r = -np.asarray(g, dtype=np.float64)  # MATLAB's gWB: the descent direction
    gradient = float(np.sqrt(r @ r))
    p = r.copy()
    p2 = float(p @ p)
    success, lambda_b, lambda_k = True, 0.0, float(lam)
    n_par = x.size
    delta = 0.0
    history, accepted = [float(perf)], []
    epoch = 0
    while True:
        if perf <= goal:
            reason = "goal"
            break
        if epoch == epochs:
            reason = "epochs"
            break
        if gradient <= min_grad:
            reason = "min_grad"
            break
        epoch += 1
        if success:  # second-order information along p
            sigma_k = sigma / np.sqrt(p2)
            _, g_t = fun(x + sigma_k * p)
            n_eval += 1
            s = (r + np.asarray(g_t)) / sigma_k  # (E'(x + sigma_k p) - E'(x)) / sigma_k
            delta = float(p @ s)
        delta += (lambda_k - lambda_b) * p2  # scale
        if delta <= 0:  # make the Hessian model positive definite
            lambda_b = 2.0 * (lambda_k - delta / p2)
            delta = -delta + lambda_k * p2
            lambda_k = lambda_b
        mu = float(p @ r)
        alpha = mu / delta
        x_new = x + alpha * p
        perf_new, g_new = fun(x_new)
        n_eval += 1
        diff = 2.0 * delta * (perf - perf_new) / mu**2  # comparison parameter
        if diff >= 0:  # successful reduction
            r_old = r
            x, perf, r = x_new, float(perf_new), -np.asarray(g_new, dtype=np.float64)
            gradient = float(np.sqrt(r @ r))
            lambda_b, success = 0.0, True
            if epoch % n_par == 1:  # restart: first and every n_par-th epoch
                p = r.copy()
            else:
                beta = (float(r @ r) - float(r @ r_old)) / mu
                p = r + beta * p
            p2 = float(p @ p)
            if diff >= 0.75:
                lambda_k = 0.25 * lambda_k
        else:
            lambda_b, success = lambda_k, False
        if diff < 0.25 and p2 != 0:
            lambda_k = lambda_k + delta * (1.0 - diff) / p2
        history.append(float(perf))
        accepted.append(bool(diff >= 0))
    return SCGResult(x=x, perf=float(perf), gradient=gradient, epochs=epoch, stop_reason=reason,
                     perf_history=history, accepted=accepted, n_evaluations=n_eval)
