"""Feature importance on the test split: grouped permutation importance and drop-column ablation
with bootstrap intervals.

Both score with the macro one-vs-rest AUROC of :mod:`fusion_utils.evaluation.metrics` and take
their intervals from the package's one bootstrap engine
(:func:`fusion_utils.evaluation.significance.bootstrap_macro_ci`: stratified, paired).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.evaluation.metrics import macro_auroc
from fusion_utils.evaluation.significance import bootstrap_macro_ci

__all__ = ["drop_column_ablation", "grouped_permutation_importance"]


# --------------------------------------------------------------------------------------------
# permutation importance, ablation (AUROC and bootstrap: fusion_utils.evaluation)
# --------------------------------------------------------------------------------------------

def _proba(estimator: Any, X: Any) -> np.ndarray:
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(f"{type(estimator).__name__} has no predict_proba: pass a fitted "
                        "probabilistic classifier")
    return np.asarray(estimator.predict_proba(X), dtype=float)


def _proba_in(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` with its columns put in ``classes`` order (via ``classes_``)."""
    p = _proba(estimator, X)
    own = getattr(estimator, "classes_", None)
    if own is None:
        return p
    own = [str(c) for c in own]
    if own == list(classes):
        return p
    missing = [c for c in classes if c not in own]
    if missing:
        raise ValueError(f"the estimator was fitted without class(es) {missing}; its classes_ "
                         f"are {own}")
    return p[:, [own.index(c) for c in classes]]


def _classes(estimator: Any, classes: Sequence[str] | None) -> np.ndarray:
    if classes is not None:
        return np.asarray(classes, dtype=str)
    if hasattr(estimator, "classes_"):
        return np.asarray(estimator.classes_, dtype=str)
    raise ValueError(f"{type(estimator).__name__} has no classes_; pass classes=")


def _normalise_groups(X: Any, groups: Mapping[str, Sequence[int | str]] | None
                      ) -> dict[str, list[int]]:
    ncol = X.shape[1]
    if groups is None:
        names = list(X.columns) if isinstance(X, pd.DataFrame) else [str(j) for j in range(ncol)]
        return {str(n): [j] for j, n in enumerate(names)}
    out: dict[str, list[int]] = {}
    for name, cols in groups.items():
        idx = []
        for c in cols:
            if isinstance(c, (int, np.integer)):
                if not 0 <= int(c) < ncol:
                    raise IndexError(f"group {name!r}: column {c} out of range for {ncol} columns")
                idx.append(int(c))
            elif isinstance(X, pd.DataFrame):
                if c not in X.columns:
                    raise KeyError(f"group {name!r}: no column {c!r}; columns are "
                                   f"{list(X.columns)}")
                idx.append(X.columns.get_loc(c))
            else:
                raise TypeError(f"group {name!r}: column {c!r} is a name but X is an array; "
                                "pass column indices or a DataFrame")
        if not idx:
            raise ValueError(f"group {name!r} is empty")
        out[str(name)] = idx
    return out


def _permute_columns(X: Any, idx: list[int], perm: np.ndarray) -> Any:
    if isinstance(X, pd.DataFrame):
        Xp = X.copy()
        Xp.iloc[:, idx] = X.iloc[perm, idx].to_numpy()
        return Xp
    Xp = np.array(X, copy=True)
    Xp[:, idx] = Xp[perm][:, idx]
    return Xp


def grouped_permutation_importance(
    estimator: Any,
    X: np.ndarray | pd.DataFrame,
    y: Sequence[str] | np.ndarray,
    groups: Mapping[str, Sequence[int | str]] | None = None,
    *,
    classes: Sequence[str] | None = None,
    n_repeats: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Drop in macro AUROC when a group of columns is shuffled together.

    The same as ``sklearn.inspection.permutation_importance`` with a macro-AUROC scorer, except
    that every column of a group gets the *same* row permutation, so a raw metadata column that
    the encoder spread over several inputs (the six parts of ``recording_date``) is judged as one.
    scikit-learn 1.9 has no groups argument; with singleton groups the two agree in expectation.

    Parameters
    ----------
    estimator : fitted classifier
        Anything with ``predict_proba`` (a ``SoftmaxClassifier``, a pipeline whose first step
        encodes a raw metadata frame, or :class:`ClassifierWeights`).
    X : numpy.ndarray or pandas.DataFrame
        Evaluation rows (the test split).
    y : sequence of str
        True labels.
    groups : mapping, optional
        ``name -> column indices`` (or column names when ``X`` is a DataFrame); by default every
        column is its own group.
    classes : sequence of str, optional
        Classes to score (default: ``estimator.classes_``); the probability columns are matched
        to them through ``estimator.classes_`` when the estimator has it.
    n_repeats : int
        Permutations per group.
    seed : int
        Seed of the permutations.

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by decreasing importance: ``feature``, ``n_columns``,
        ``baseline`` (macro AUROC unshuffled), ``importance_mean``, ``importance_std``.
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats={n_repeats}: pass at least 1")
    y = np.asarray(y, dtype=str)
    if len(y) != X.shape[0]:
        raise ValueError(f"y has {len(y)} labels but X has {X.shape[0]} rows")
    cls = _classes(estimator, classes)
    grp = _normalise_groups(X, groups)
    baseline = macro_auroc(y, _proba_in(estimator, X, cls), cls)
    rng = np.random.default_rng(seed)
    rows = []
    for name, idx in grp.items():
        drops = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(y))
            shuffled = _permute_columns(X, idx, perm)
            drops.append(baseline - macro_auroc(y, _proba_in(estimator, shuffled, cls), cls))
        rows.append({"feature": name, "n_columns": len(idx), "baseline": baseline,
                     "importance_mean": float(np.mean(drops)),
                     "importance_std": float(np.std(drops))})
    return (pd.DataFrame(rows).sort_values("importance_mean", ascending=False, kind="stable")
            .reset_index(drop=True))


def _take_columns(X: Any, keep: list[int]) -> Any:
    return X.iloc[:, keep] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, keep]


def drop_column_ablation(
    estimator: Any,
    X_train: np.ndarray | pd.DataFrame,
    y_train: Sequence[str] | np.ndarray,
    X_test: np.ndarray | pd.DataFrame,
    y_test: Sequence[str] | np.ndarray,
    groups: Mapping[str, Sequence[int | str]] | None = None,
    *,
    n_bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Refit without each group of columns; report the loss in macro AUROC on the test rows.

    Unlike permutation importance, which asks how much the *fitted* model relies on a column,
    ablation asks how much the column adds that the other columns cannot replace.

    Parameters
    ----------
    estimator : unfitted or fitted classifier
        Cloned (``sklearn.base.clone``) and refitted for the full model and once per group.
    X_train, y_train, X_test, y_test
        Training and evaluation data (arrays or DataFrames).
    groups : mapping, optional
        ``name -> column indices/names`` to drop together (default: every column alone).
    n_bootstrap, level, seed
        Stratified paired bootstrap of the difference, interval coverage ``level``
        (:func:`fusion_utils.evaluation.significance.bootstrap_macro_ci`).

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by decreasing ``delta``: ``feature``, ``n_columns``,
        ``auroc_full``, ``auroc_without``, ``delta`` (full minus without: positive when the
        column helps), ``ci_low``, ``ci_high``.
    """
    from sklearn.base import clone

    y_train = np.asarray(y_train, dtype=str)
    y_test = np.asarray(y_test, dtype=str)
    grp = _normalise_groups(X_train, groups)
    full = clone(estimator).fit(X_train, y_train)
    cls = _classes(full, None)
    p_full = _proba(full, X_test)
    ncol = X_train.shape[1]
    rows = []
    for name, idx in grp.items():
        keep = [j for j in range(ncol) if j not in set(idx)]
        if not keep:
            raise ValueError(f"dropping group {name!r} leaves no column to fit on")
        reduced = clone(estimator).fit(_take_columns(X_train, keep), y_train)
        p_red = _proba(reduced, _take_columns(X_test, keep))
        if list(_classes(reduced, None)) != list(cls):
            raise ValueError(f"refit without {name!r} saw different classes")
        ci = bootstrap_macro_ci(y_test, {"full": p_full, "without": p_red}, cls,
                                metrics=("auroc",), n_bootstrap=n_bootstrap, seed=seed,
                                level=level, differences=[("without", "full")])
        ci = ci.set_index("model")
        d = ci.loc["full - without"]
        rows.append({"feature": name, "n_columns": len(idx),
                     "auroc_full": ci.loc["full", "estimate"],
                     "auroc_without": ci.loc["without", "estimate"], "delta": d["estimate"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"]})
    return (pd.DataFrame(rows).sort_values("delta", ascending=False, kind="stable")
            .reset_index(drop=True))


