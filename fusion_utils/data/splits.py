"""Train/validation/test splits: stratified by class, PTB-XL's ``strat_fold``, and group-aware.

Every function returns one label per record, ``"train"``, ``"val"`` or ``"test"``, as a NumPy
array of str aligned with its input, so a manifest stores the split as a plain column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SPLITS",
    "group_stratified_split",
    "strat_fold_split",
    "stratified_split",
    "stratified_subsample",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or not np.isclose(sum(fr), 1.0):
        raise ValueError(f"fractions={tuple(fractions)!r}: give three non-negative numbers "
                         "(train, val, test) that sum to 1, e.g. (0.7, 0.15, 0.15)")
    return fr  # type: ignore[return-value]


def _round_half_up(x: np.ndarray | float) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=float) + 0.5).astype(int)


def _as_labels(labels: Sequence[object] | np.ndarray, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if len(arr) and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
        raise ValueError(f"{name} contains missing values; drop unlabelled records first")
    return arr.astype(str)


def stratified_split(
    labels: Sequence[object] | np.ndarray,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> np.ndarray:
    """Split each class separately into train/val/test with the given fractions.

    Each class of ``n`` records gets ``round(n * f_val)`` validation and ``round(n * f_test)``
    test records (halves rounded up) and the rest for training, drawn at random with ``seed``.

    Parameters
    ----------
    labels : sequence
        One class label per record.
    fractions : (float, float, float)
        Train, validation and test fractions (sum 1).
    seed : int
        Seed of the random permutation within each class.

    Returns
    -------
    numpy.ndarray
        ``"train"``/``"val"``/``"test"`` per record.

    Notes
    -----
    This deliberately does not call ``sklearn.model_selection.train_test_split``. Per-class
    rounding is what MATLAB's ``splitEachLabel`` does, which the paper used: on HAM10000's
    10,015 images it gives 7,011 / 1,502 / 1,502, the paper's validation and test sizes (the
    paper prints 7,021 training images, which cannot add up to 10,015); two chained
    scikit-learn ``train_test_split`` calls give 7,009 / 1,503 / 1,503. It also never fails on a
    class with one or two members (such a class stays in training), which the subsampled
    cohorts of the tests and exercises have.

    Examples
    --------
    >>> stratified_split(["a"] * 10 + ["b"] * 10, (0.6, 0.2, 0.2), seed=0).tolist().count("val")
    4
    """
    _f_train, f_val, f_test = _check_fractions(fractions)
    y = _as_labels(labels)
    out = np.full(len(y), "train", dtype="<U5")
    rng = np.random.default_rng(seed)
    for cls in sorted(set(y.tolist())):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(_round_half_up(len(idx) * f_val))
        n_test = int(_round_half_up(len(idx) * f_test))
        if n_val + n_test > len(idx):  # only when f_train is ~0
            n_test = len(idx) - n_val
        out[idx[:n_val]] = "val"
        out[idx[n_val:n_val + n_test]] = "test"
    return out


def strat_fold_split(strat_fold: Sequence[int] | np.ndarray) -> np.ndarray:
    """PTB-XL's recommended split: folds 1-8 train, 9 validation, 10 test.

    ``strat_fold`` comes from ``ptbxl_database.csv``; the folds are stratified by label and keep
    each patient in one fold (Wagner et al. 2020), and folds 9-10 hold only human-validated
    records.
    """
    folds = np.asarray(strat_fold)
    try:
        ints = folds.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"strat_fold must be integers 1-10: {exc}") from exc
    bad = sorted({v for v in ints.tolist() if v not in range(1, 11)})
    if bad:
        raise ValueError(f"strat_fold has value(s) {bad[:5]} outside 1-10; pass the "
                         "strat_fold column of ptbxl_database.csv")
    return np.where(ints <= 8, "train", np.where(ints == 9, "val", "test")).astype("<U5")


def group_stratified_split(
    labels: Sequence[object] | np.ndarray,
    groups: Sequence[object] | np.ndarray,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> np.ndarray:
    """Stratified split that keeps every group (patient or lesion) in a single split.

    Groups are dealt one at a time, largest first (ties in a random order drawn with ``seed``),
    each to the split where it most reduces the squared gap between the current and the target
    per-class counts (target: ``fractions`` of each class's total, gaps relative to that total).

    Parameters
    ----------
    labels : sequence
        Class label per record.
    groups : sequence
        Group per record (PTB-XL ``patient_id``, HAM10000 ``lesion_id``).
    fractions : (float, float, float)
        Train, validation, test fractions.
    seed : int
        Order of equal-sized groups.

    Returns
    -------
    numpy.ndarray
        ``"train"``/``"val"``/``"test"`` per record; no group appears in two splits.

    Notes
    -----
    This is the greedy rule of scikit-learn's ``StratifiedGroupKFold`` aimed straight at three
    unequal splits rather than at k equal folds. ``StratifiedGroupKFold`` itself was not used:
    it needs k folds (fractions such as 0.15 only to fold granularity) and takes about 30 s on
    HAM10000's 7,470 lesions on one core, against well under a second here. A group whose
    records carry different labels (a PTB-XL patient with two diagnoses) counts towards each.
    """
    fr = np.asarray(_check_fractions(fractions))
    y = _as_labels(labels)
    g = _as_labels(groups, "groups")
    if len(g) != len(y):
        raise ValueError(f"labels ({len(y)}) and groups ({len(g)}) differ in length")
    if len(y) == 0:
        return np.empty(0, dtype="<U5")
    group_ids, group_of = np.unique(g, return_inverse=True)
    class_ids, class_of = np.unique(y, return_inverse=True)
    counts = np.zeros((len(group_ids), len(class_ids)))
    np.add.at(counts, (group_of, class_of), 1.0)
    totals = counts.sum(axis=0)
    weight = 1.0 / totals**2
    target = fr[:, None] * totals[None, :]  # (3 splits, classes)
    current = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(group_ids)), -counts.sum(axis=1)))
    split_of_group = np.empty(len(group_ids), dtype=int)
    for j in order:
        c = counts[j]
        gap = current - target
        cost = ((2.0 * gap * c + c * c) * weight).sum(axis=1)
        cost[fr == 0] = np.inf
        best = int(np.argmin(cost))
        split_of_group[j] = best
        current[best] += c
    return np.asarray(SPLITS)[split_of_group[group_of]].astype("<U5")


def stratified_subsample(
    labels: Sequence[object] | np.ndarray, n: int, seed: int = 0
) -> np.ndarray:
    """Indices of ``n`` records drawn per class in proportion to class size.

    Each class present gets at least one record when ``n`` allows it (so small cohorts still
    show every class), the rest is allotted by largest remainder; draws are without replacement
    with ``seed``. Returns sorted indices; all indices when ``n >= len(labels)``.
    """
    y = _as_labels(labels)
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n < 1:
        raise ValueError(f"max_records={n!r}: pass a positive number of records, or None for all")
    classes, counts = np.unique(y, return_counts=True)
    take = np.zeros(len(classes), dtype=int)
    # Classes whose share would round to nothing get one record each (when n allows), the
    # others share the rest in proportion (largest remainder); repeat while that creates zeros.
    fixed = np.zeros(len(classes), dtype=bool)
    while True:
        budget = n - int(fixed.sum())
        free = ~fixed
        quota = np.zeros(len(classes))
        quota[free] = counts[free] / counts[free].sum() * budget
        take = np.where(fixed, 1, np.floor(quota).astype(int))
        short = n - take.sum()
        for j in np.argsort(-(quota - np.floor(quota)), kind="stable")[:short]:
            take[j] += 1
        tiny = free & (take == 0)
        if not tiny.any() or n < len(classes) or fixed.sum() + tiny.sum() > n:
            break
        fixed |= tiny
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(y == c), size=t, replace=False)
              for c, t in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))
