"""Fit time of SoftmaxClassifier vs scikit-learn's LogisticRegression (lbfgs) at PTB-XL scale.

Same data, same penalty (``l2 = 1/n``, i.e. scikit-learn's default ``C = 1``), same tolerance
(1e-6), same epoch budget (2000), float64, same run, BLAS (NumPy's and torch's) limited to
``--threads`` threads. Prints both fit times, the ratio, the iterations and loss evaluations,
the time spent forming the preconditioner (included in our fit time) and the objective gap (the
mean cross-entropy + l2/2 ||W||^2 of each solution, relative). Figures are printed, never
asserted.

Synthetic features that look like the real ones: ``--d`` non-negative CNN-like activations
(ReLU of correlated Gaussians with a weak class signal, about half zeros) followed by metadata
at their natural scale as the paper's mapping leaves them: age (~60 years), sex (0/1), height
and weight (cm, kg; -1 when missing, as in PTB-XL), and with ``--with-date`` the six numbers of
a recording date (year ~1990).

    python benchmarks/bench_softmax.py                 # 15,000 x 4,106, 5 classes
    python benchmarks/bench_softmax.py --n 3000 --d 1000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def make_data(n: int, d: int, k: int, with_date: bool, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` x (``d`` image + metadata) features and labels in ``k`` classes."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=np.r_[0.42, np.full(k - 1, 0.58 / (k - 1))])
    rank = 64
    basis = rng.normal(size=(rank, d)) / np.sqrt(rank)
    centres = rng.normal(scale=0.35, size=(k, rank))
    latent = rng.normal(size=(n, rank)) + centres[y]
    img = np.maximum(latent @ basis + 0.5 * rng.normal(size=(n, d)), 0.0) * 2.0
    age = np.clip(rng.normal(60, 17, n) + 4 * (y == 1) - 3 * (y == 0), 18, 95)
    sex = (rng.random(n) < 0.5 + 0.1 * (y == 2)).astype(float)
    height = np.where(rng.random(n) < 0.7, -1.0, rng.normal(168, 9, n))
    weight = np.where(rng.random(n) < 0.5, -1.0, rng.normal(75, 14, n))
    meta = [age, sex, height, weight]
    if with_date:
        meta += [rng.integers(1984, 2002, n), rng.integers(1, 13, n), rng.integers(1, 29, n),
                 rng.integers(0, 24, n), rng.integers(0, 60, n), rng.integers(0, 60, n)]
    X = np.hstack([img, np.column_stack(meta).astype(float)])
    return np.ascontiguousarray(X), y


def objective(X, y, coef, intercept, l2):
    z = X @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean() + 0.5 * l2 * np.sum(coef * coef))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15000, help="training records")
    parser.add_argument("--d", type=int, default=4096, help="image features")
    parser.add_argument("--k", type=int, default=5, help="classes")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-epochs", type=int, default=2000)
    parser.add_argument("--with-date", action="store_true", help="add 6 recording-date columns")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads for both fits")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from fusion_utils.fusion.softmax import SoftmaxClassifier, sklearn_C

    torch.set_num_threads(args.threads)
    X, y = make_data(args.n, args.d, args.k, args.with_date)
    l2 = 1.0 / len(y)
    print(f"data: {X.shape[0]} x {X.shape[1]} ({args.d} image + {X.shape[1] - args.d} metadata), "
          f"{args.k} classes, l2 = 1/n (sklearn C = {sklearn_C(l2, len(y)):g}), tol {args.tol:g}, "
          f"max {args.max_epochs} epochs, {args.threads} threads")
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        ours = SoftmaxClassifier(l2=l2, tol=args.tol, max_epochs=args.max_epochs).fit(X, y)
        t_ours = time.perf_counter() - t0
        f_ours = objective(X, y, ours.coef_, ours.intercept_, l2)
        print(f"SoftmaxClassifier : {t_ours:8.2f} s  {ours.n_epochs_:5d} epochs  "
              f"{ours.n_loss_evaluations_:5d} loss evals ({ours.n_low_precision_evaluations_} float32)  |grad|_2 {ours.grad_norm_:.2e}  "
              f"objective {f_ours:.10f}  ({ours.stop_reason_})")
        print(f"  preconditioner: {ours.n_preconditioner_updates_} builds, "
              f"{ours.preconditioner_time_:.2f} s of the fit")
        if args.skip_sklearn:
            return
        t0 = time.perf_counter()
        ref = LogisticRegression(C=sklearn_C(l2, len(y)), tol=args.tol,
                                 max_iter=args.max_epochs).fit(X, y)
        t_ref = time.perf_counter() - t0
    f_ref = objective(X, y, ref.coef_, ref.intercept_, l2)
    print(f"sklearn lbfgs     : {t_ref:8.2f} s  {int(ref.n_iter_[0]):5d} iterations"
          f"{' (max_iter reached, not converged)' if ref.n_iter_[0] >= args.max_epochs else ''}"
          f"  objective {f_ref:.10f}")
    print(f"speed-up (sklearn time / ours): {t_ref / t_ours:.1f}x")
    print(f"objective gap (sklearn - ours) / ours: {(f_ref - f_ours) / f_ours:+.2e}")


if __name__ == "__main__":
    main()
