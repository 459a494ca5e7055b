"""Reading a softmax classifier: weight blocks, scale-aware weights, permutation importance, ablation.

The paper (Thomas 2021, Sec. III.E, Figs. 5-6) reads the raw weights of the softmax classifier
trained on ``H = [F(X), G(M)]``: the first block multiplies the CNN features (``img.*`` columns),
the second the encoded metadata. Raw weights on unscaled inputs mix two things, how much a column
matters and the unit it is measured in (age near 60, a CNN feature near 1, a year near 1990), so
this module offers the paper's reading and three scale-aware ones side by side:

* :func:`weights_frame` / :func:`split_blocks`: the weights split into the image-feature block and
  the metadata block by column name, tidy for plotting;
* :func:`standardised_weights`: weight x the feature's standard deviation on the training split,
  the change in a class logit for a one-standard-deviation change of the input (invariant to the
  unit a column is measured in);
* :func:`grouped_permutation_importance`: the drop in macro AUROC on the test split when one
  metadata column (all the encoded columns derived from it, e.g. the six parts of
  ``recording_date``, together) is shuffled;
* :func:`drop_column_ablation`: the change in macro AUROC when the classifier is refitted without
  one metadata column, with a paired bootstrap interval.

It also holds the small helpers of the metadata-only chapter (:func:`parse_column_sets`,
:func:`fit_metadata_only`). Functions take arrays, frames and fitted estimators; the only file
I/O is the thin loaders :meth:`ClassifierWeights.load` and :func:`load_run`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.io import save_npz_atomic

__all__ = [
    "DEFAULT_COLUMN_SETS",
    "IMAGE_PREFIX",
    "LABEL_LEAK_COLUMNS",
    "ClassifierWeights",
    "FusedData",
    "RunWeights",
    "WeightBlocks",
    "block_summary",
    "bootstrap_auroc_ci",
    "drop_column_ablation",
    "feature_groups",
    "find_runs",
    "fit_metadata_only",
    "grouped_permutation_importance",
    "image_mask",
    "load_fused_data",
    "load_run",
    "macro_auroc",
    "one_vs_rest_auroc",
    "paired_bootstrap_delta",
    "parse_column_sets",
    "reading_comparison",
    "run_parameters",
    "source_column",
    "split_blocks",
    "standardised_weights",
    "weight_scale_table",
    "weights_frame",
]

#: Prefix of the image-feature columns (``features.FeatureSet.feature_names``).
IMAGE_PREFIX = "img."
_META_PREFIX = "meta."

#: Metadata column sets compared by the metadata-only chapter, per dataset. PTB-XL: the patient
#: columns the paper fuses, against the same plus the acquisition columns the paper leaves out
#: "to avoid detection of potential bias" (nurse, site, device, recording date). HAM10000: the
#: patient columns, and the same plus ``dx_type``, which records *how the diagnosis was made*
#: (histopathology, follow-up, ...) and therefore leaks the label.
DEFAULT_COLUMN_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "ptbxl": {
        "patient": ("age", "sex", "height", "weight"),
        "acquisition": ("nurse", "site", "device", "recording_date"),
        "patient+acquisition": ("age", "sex", "height", "weight",
                                "nurse", "site", "device", "recording_date"),
    },
    "ham10000": {
        "patient": ("age", "sex", "localization"),
        "patient+dx_type (label leak)": ("age", "sex", "localization", "dx_type"),
    },
}

#: Columns that encode the diagnosis itself; a set that uses one is a label leak, not a baseline.
LABEL_LEAK_COLUMNS: dict[str, tuple[str, ...]] = {"ptbxl": ("scp_codes", "report"),
                                                  "ham10000": ("dx", "dx_type")}


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------

def image_mask(feature_names: Sequence[str] | np.ndarray, prefix: str = IMAGE_PREFIX) -> np.ndarray:
    """Boolean mask of the image-feature columns (names starting with ``prefix``).

    Parameters
    ----------
    feature_names : sequence of str
        Column names of the classifier's input, e.g. ``["img.0000", ..., "age", "sex"]``.
    prefix : str
        Prefix of the image features (``"img."``).

    Returns
    -------
    numpy.ndarray
        ``True`` for image features, ``False`` for metadata columns.
    """
    names = np.asarray(feature_names, dtype=str)
    if names.ndim != 1:
        raise ValueError(f"feature_names must be one-dimensional, got shape {names.shape}")
    return np.char.startswith(names, prefix)


@dataclass(frozen=True)
class WeightBlocks:
    """A weight matrix split into the image-feature block and the metadata block.

    Attributes
    ----------
    image, meta : numpy.ndarray
        ``(classes, d_image)`` and ``(classes, d_meta)`` weights.
    image_names, meta_names : numpy.ndarray
        Column names of each block, in the classifier's order.
    classes : numpy.ndarray
        Class names (rows).
    """

    image: np.ndarray
    meta: np.ndarray
    image_names: np.ndarray
    meta_names: np.ndarray
    classes: np.ndarray


def split_blocks(
    coef: np.ndarray,
    feature_names: Sequence[str] | np.ndarray,
    classes: Sequence[str] | np.ndarray,
    prefix: str = IMAGE_PREFIX,
) -> WeightBlocks:
    """Split a ``(classes, features)`` weight matrix into image and metadata blocks by column name.

    Parameters
    ----------
    coef : numpy.ndarray
        Weights, one row per class, one column per input feature.
    feature_names : sequence of str
        One name per column; those starting with ``prefix`` are image features, the rest metadata.
    classes : sequence of str
        One name per row.
    prefix : str
        Prefix of the image features.

    Returns
    -------
    WeightBlocks
    """
    coef = np.asarray(coef, dtype=float)
    names = np.asarray(feature_names, dtype=str)
    cls = np.asarray(classes, dtype=str)
    if coef.ndim != 2 or coef.shape != (len(cls), len(names)):
        raise ValueError(f"coef has shape {coef.shape}; expected (classes, features) = "
                         f"({len(cls)}, {len(names)}) from classes and feature_names")
    mask = image_mask(names, prefix)
    return WeightBlocks(image=coef[:, mask], meta=coef[:, ~mask], image_names=names[mask],
                        meta_names=names[~mask], classes=cls)


def standardised_weights(coef: np.ndarray, feature_std: np.ndarray) -> np.ndarray:
    """Weights times the standard deviation of their feature on the training split.

    ``w_kj * s_j`` is the change of class ``k``'s logit when feature ``j`` moves by one standard
    deviation. Measuring a column in other units (years vs days) rescales ``w_kj`` and ``s_j``
    inversely, so the product does not change; raw weights do.

    Parameters
    ----------
    coef : numpy.ndarray
        ``(classes, features)`` weights.
    feature_std : numpy.ndarray
        ``(features,)`` standard deviations of the training matrix.

    Returns
    -------
    numpy.ndarray
        ``(classes, features)`` standardised weights.
    """
    coef = np.asarray(coef, dtype=float)
    std = np.asarray(feature_std, dtype=float)
    if coef.ndim != 2 or std.shape != (coef.shape[1],):
        raise ValueError(f"feature_std has shape {std.shape}; expected ({coef.shape[-1]},), "
                         "one standard deviation per column of coef")
    return coef * std[None, :]


@dataclass(frozen=True)
class ClassifierWeights:
    """The parameters of a fitted linear softmax classifier, as notebook 04 stores them.

    Attributes
    ----------
    coef : numpy.ndarray
        ``(classes, features)`` weights.
    intercept : numpy.ndarray
        ``(classes,)`` biases.
    feature_names : numpy.ndarray
        ``(features,)`` column names (``img.0000`` ... then metadata names).
    classes : numpy.ndarray
        ``(classes,)`` class names, in the row order of ``coef``.
    feature_std : numpy.ndarray or None
        ``(features,)`` standard deviation of each column on the training split.
    """

    coef: np.ndarray
    intercept: np.ndarray
    feature_names: np.ndarray
    classes: np.ndarray
    feature_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        k, d = np.shape(self.coef)
        if np.shape(self.intercept) != (k,) or len(self.classes) != k or len(self.feature_names) != d:
            raise ValueError(
                f"inconsistent classifier: coef {np.shape(self.coef)}, intercept "
                f"{np.shape(self.intercept)}, {len(self.classes)} classes, "
                f"{len(self.feature_names)} feature names")
        if self.feature_std is not None and np.shape(self.feature_std) != (d,):
            raise ValueError(f"feature_std has shape {np.shape(self.feature_std)}; expected ({d},)")

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        feature_names: Sequence[str] | np.ndarray,
        X_train: np.ndarray | None = None,
    ) -> ClassifierWeights:
        """Read ``coef_``, ``intercept_`` and ``classes_`` of a fitted estimator.

        Parameters
        ----------
        estimator : fitted classifier
            ``SoftmaxClassifier``, ``LogisticRegression`` or any estimator with those attributes.
        feature_names : sequence of str
            Names of the estimator's input columns.
        X_train : numpy.ndarray, optional
            The training matrix; its per-column standard deviation becomes ``feature_std``.
        """
        for attr in ("coef_", "intercept_", "classes_"):
            if not hasattr(estimator, attr):
                raise TypeError(f"{type(estimator).__name__} has no {attr}: pass a fitted linear "
                                "classifier (SoftmaxClassifier, LogisticRegression)")
        std = None if X_train is None else np.asarray(X_train, dtype=float).std(axis=0)
        return cls(coef=np.asarray(estimator.coef_, dtype=float),
                   intercept=np.asarray(estimator.intercept_, dtype=float),
                   feature_names=np.asarray(feature_names, dtype=str),
                   classes=np.asarray(estimator.classes_, dtype=str), feature_std=std)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassifierWeights:
        """Load ``classifier_{image,fused}.npz`` (keys ``coef``, ``intercept``, ``feature_names``,
        ``classes``, optional ``feature_std``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no classifier file {path}: notebook 04 writes "
                                    "classifier_image.npz and classifier_fused.npz into its run_dir")
        with np.load(path, allow_pickle=False) as z:
            missing = {"coef", "intercept", "feature_names", "classes"} - set(z.files)
            if missing:
                raise KeyError(f"{path} lacks {sorted(missing)}; it has {sorted(z.files)}")
            std = z["feature_std"] if "feature_std" in z.files else None
            return cls(coef=z["coef"].astype(float), intercept=z["intercept"].astype(float),
                       feature_names=z["feature_names"].astype(str),
                       classes=z["classes"].astype(str),
                       feature_std=None if std is None else std.astype(float))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``.npz`` that :meth:`load` reads (atomic)."""
        arrays = dict(coef=self.coef, intercept=self.intercept,
                      feature_names=np.asarray(self.feature_names, dtype=str),
                      classes=np.asarray(self.classes, dtype=str))
        if self.feature_std is not None:
            arrays["feature_std"] = self.feature_std
        return save_npz_atomic(path, **arrays)

    @property
    def classes_(self) -> np.ndarray:
        """Alias of ``classes`` (scikit-learn's name), so the stored model scores like an estimator."""
        return self.classes

    @property
    def blocks(self) -> WeightBlocks:
        """Raw weights split into image and metadata blocks."""
        return split_blocks(self.coef, self.feature_names, self.classes)

    @property
    def standardised(self) -> np.ndarray:
        """``coef * feature_std`` (raises if ``feature_std`` is missing)."""
        if self.feature_std is None:
            raise ValueError("this classifier was saved without feature_std; refit it or pass "
                             "X_train to ClassifierWeights.from_estimator")
        return standardised_weights(self.coef, self.feature_std)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax probabilities of the stored linear model (columns in ``classes`` order)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[1]:
            raise ValueError(f"X has shape {X.shape}; the classifier expects "
                             f"{self.coef.shape[1]} columns")
        z = X @ self.coef.T + self.intercept
        z = np.where(np.isnan(z), -np.inf, z)  # a class absent from training (NaN row): p = 0
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def weights_frame(weights: ClassifierWeights, model: str = "") -> pd.DataFrame:
    """Tidy table of a classifier's weights, one row per (class, feature).

    Parameters
    ----------
    weights : ClassifierWeights
    model : str
        Label stored in the ``model`` column (``"image"`` or ``"fused"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``class``, ``feature``, ``block`` (``image`` | ``metadata``),
        ``weight``, ``abs_weight``, ``std_weight`` (NaN without ``feature_std``).
    """
    k, d = weights.coef.shape
    mask = image_mask(weights.feature_names)
    std_w = (weights.standardised if weights.feature_std is not None
             else np.full((k, d), np.nan))
    return pd.DataFrame({
        "model": model,
        "class": np.repeat(weights.classes, d),
        "feature": np.tile(weights.feature_names, k),
        "block": np.tile(np.where(mask, "image", "metadata"), k),
        "weight": weights.coef.ravel(),
        "abs_weight": np.abs(weights.coef).ravel(),
        "std_weight": std_w.ravel(),
    })


def weight_scale_table(image_only: ClassifierWeights, fused: ClassifierWeights) -> pd.DataFrame:
    """Median ``|weight|`` of the image features, image-only vs fused, per class and overall.

    The paper reads the shrinking of the image-feature weights when metadata joins as "one to
    three orders of magnitude"; ``orders_of_magnitude`` is ``log10`` of the ratio.

    Returns
    -------
    pandas.DataFrame
        One row per class plus ``all``: ``median_abs_image_only``, ``median_abs_fused`` (image
        block of the fused model), ``median_abs_metadata`` (metadata block of the fused model),
        ``ratio`` (image-only / fused) and ``orders_of_magnitude``.
    """
    a, b = image_only.blocks, fused.blocks
    if list(a.classes) != list(b.classes):
        raise ValueError(f"class order differs: image-only {list(a.classes)}, fused {list(b.classes)}")
    if b.meta.shape[1] == 0:
        raise ValueError("the fused classifier has no metadata columns (every feature name starts "
                         f"with {IMAGE_PREFIX!r}); pass classifier_fused.npz as `fused`")
    rows = []
    for i, name in enumerate([*a.classes, "all"]):
        sl = slice(None) if name == "all" else slice(i, i + 1)
        m_img = float(np.nanmedian(np.abs(a.image[sl])))
        m_fus = float(np.nanmedian(np.abs(b.image[sl])))
        m_meta = float(np.nanmedian(np.abs(b.meta[sl])))
        ratio = m_img / m_fus if m_fus > 0 else np.inf
        rows.append({"class": name, "median_abs_image_only": m_img, "median_abs_fused": m_fus,
                     "median_abs_metadata": m_meta, "ratio": ratio,
                     "orders_of_magnitude": float(np.log10(ratio)) if ratio > 0 else -np.inf})
    return pd.DataFrame(rows)


def block_summary(weights: Mapping[str, ClassifierWeights]) -> pd.DataFrame:
    """Median ``|weight|`` per block, raw and standardised, for several classifiers.

    Parameters
    ----------
    weights : mapping
        ``model name -> ClassifierWeights`` (e.g. ``{"image": ..., "fused": ...}``).

    Returns
    -------
    pandas.DataFrame
        One row per (model, block): ``n_features``, ``median_abs_weight``,
        ``median_abs_std_weight`` (NaN without ``feature_std``).
    """
    rows = []
    for model, w in weights.items():
        mask = image_mask(w.feature_names)
        std = w.standardised if w.feature_std is not None else None
        for block, m in (("image", mask), ("metadata", ~mask)):
            if not m.any():
                continue
            rows.append({"model": model, "block": block, "n_features": int(m.sum()),
                         "median_abs_weight": float(np.nanmedian(np.abs(w.coef[:, m]))),
                         "median_abs_std_weight": (float(np.nanmedian(np.abs(std[:, m])))
                                                   if std is not None else np.nan)})
    return pd.DataFrame(rows)


def reading_comparison(
    fused: ClassifierWeights,
    permutation: pd.DataFrame | None = None,
    ablation: pd.DataFrame | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per raw metadata column: the paper's reading next to the scale-aware ones.

    For a column the encoder spread over several inputs (``recording_date``'s six parts), the
    weight scores take the largest of its inputs. Ranks are 1 = most important.

    Parameters
    ----------
    fused : ClassifierWeights
        The fused classifier (with ``feature_std`` for the standardised score).
    permutation, ablation : pandas.DataFrame, optional
        Outputs of :func:`grouped_permutation_importance` and :func:`drop_column_ablation`,
        keyed by raw column in their ``feature`` column.
    columns : sequence of str, optional
        Raw metadata column names (see :func:`source_column`).

    Returns
    -------
    pandas.DataFrame
        Index: raw metadata column. Columns ``mean_abs_weight`` (mean over classes of
        ``|w|``), ``mean_abs_std_weight``, ``permutation_importance``, ``ablation_delta`` when
        given, and a ``rank_<score>`` column for each.
    """
    groups = feature_groups(fused.feature_names, columns)
    if not groups:
        raise ValueError("the classifier has no metadata columns")
    out = pd.DataFrame(index=pd.Index(list(groups), name="column"))
    out["mean_abs_weight"] = [float(np.abs(fused.coef[:, idx]).mean(axis=0).max())
                              for idx in groups.values()]
    if fused.feature_std is not None:
        std = fused.standardised
        out["mean_abs_std_weight"] = [float(np.abs(std[:, idx]).mean(axis=0).max())
                                      for idx in groups.values()]
    if permutation is not None:
        out["permutation_importance"] = permutation.set_index("feature")["importance_mean"]
    if ablation is not None:
        out["ablation_delta"] = ablation.set_index("feature")["delta"]
    for col in list(out.columns):
        out[f"rank_{col}"] = out[col].rank(ascending=False, method="min").astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# grouping encoded metadata columns by the raw column they come from
# --------------------------------------------------------------------------------------------

def source_column(feature_name: str, columns: Sequence[str] | None = None) -> str:
    """The raw metadata column an encoded feature comes from.

    ``"recording_date.year"`` -> ``"recording_date"``, ``"meta.age"`` -> ``"age"``,
    ``"localization=back"`` -> ``"localization"``. With ``columns`` (raw names, with or without
    ``meta.``), the longest column that equals the name or prefixes it before ``.`` or ``=``
    wins, so column names that contain a dot are handled too.
    """
    name = str(feature_name)
    if name.startswith(_META_PREFIX):
        name = name[len(_META_PREFIX):]
    if columns is not None:
        raw = sorted({str(c).removeprefix(_META_PREFIX) for c in columns}, key=len, reverse=True)
        for col in raw:
            if name == col or name.startswith((col + ".", col + "=")):
                return col
        raise KeyError(f"feature {feature_name!r} matches none of the metadata columns {raw}")
    for sep in (".", "="):
        name = name.split(sep, 1)[0]
    return name


def feature_groups(
    feature_names: Sequence[str] | np.ndarray,
    columns: Sequence[str] | None = None,
    prefix: str = IMAGE_PREFIX,
) -> dict[str, list[int]]:
    """Indices of the encoded metadata features grouped by their raw column.

    Parameters
    ----------
    feature_names : sequence of str
        The classifier's input columns; image features (``prefix``) are skipped.
    columns : sequence of str, optional
        Raw metadata column names (see :func:`source_column`).
    prefix : str
        Prefix of the image features.

    Returns
    -------
    dict
        ``raw column -> [column indices]``, in order of first appearance.

    Examples
    --------
    >>> feature_groups(["img.0000", "age", "recording_date.year", "recording_date.month"])
    {'age': [1], 'recording_date': [2, 3]}
    """
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(np.asarray(feature_names, dtype=str)):
        if name.startswith(prefix):
            continue
        groups.setdefault(source_column(name, columns), []).append(j)
    return groups


# --------------------------------------------------------------------------------------------
# AUROC, permutation importance, ablation
# --------------------------------------------------------------------------------------------

def one_vs_rest_auroc(y_true: Sequence[str] | np.ndarray, proba: np.ndarray,
                      classes: Sequence[str] | np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC per class (NaN for a class with no positives or no negatives).

    Rank-based (Mann-Whitney U with mid-ranks for ties), equal to
    ``sklearn.metrics.roc_auc_score`` per class; written out because the bootstrap and the
    permutation loops call it thousands of times, and a resample that misses a rare class
    should give NaN for that class rather than an exception.
    """
    from scipy.stats import rankdata

    y = np.asarray(y_true, dtype=str)
    p = np.asarray(proba, dtype=float)
    cls = np.asarray(classes, dtype=str)
    if p.ndim != 2 or p.shape != (len(y), len(cls)):
        raise ValueError(f"proba has shape {p.shape}; expected (n, classes) = ({len(y)}, {len(cls)})")
    ranks = rankdata(p, axis=0)
    out = np.full(len(cls), np.nan)
    for k, c in enumerate(cls):
        pos = y == c
        n_pos = int(pos.sum())
        n_neg = len(y) - n_pos
        if n_pos and n_neg:
            out[k] = (ranks[pos, k].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def macro_auroc(y_true: Sequence[str] | np.ndarray, proba: np.ndarray,
                classes: Sequence[str] | np.ndarray) -> float:
    """Macro mean of :func:`one_vs_rest_auroc` over the classes present in ``y_true``."""
    vals = one_vs_rest_auroc(y_true, proba, classes)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


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


def _normalise_groups(X: Any, groups: Mapping[str, Sequence[int | str]] | None) -> dict[str, list[int]]:
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
                    raise KeyError(f"group {name!r}: no column {c!r}; columns are {list(X.columns)}")
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


def paired_bootstrap_delta(
    y_true: Sequence[str] | np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    classes: Sequence[str] | np.ndarray,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Macro AUROC of ``a`` minus that of ``b`` on the same rows, with a paired percentile interval.

    Both models are scored on the same bootstrap resamples of the evaluation rows, so the
    interval reflects the difference, not the two models' separate noise.

    Returns
    -------
    dict
        ``auroc_a``, ``auroc_b``, ``delta``, ``ci_low``, ``ci_high``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: pass a level in (0, 1), e.g. 0.95")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={n_bootstrap}: pass at least 1")
    y = np.asarray(y_true, dtype=str)
    a = macro_auroc(y, proba_a, classes)
    b = macro_auroc(y, proba_b, classes)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        idx = rng.integers(0, len(y), len(y))
        deltas[i] = (macro_auroc(y[idx], proba_a[idx], classes)
                     - macro_auroc(y[idx], proba_b[idx], classes))
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(deltas, [alpha, 1 - alpha])
    return {"auroc_a": a, "auroc_b": b, "delta": a - b, "ci_low": float(lo), "ci_high": float(hi)}


def _take_columns(X: Any, keep: list[int]) -> Any:
    return X.iloc[:, keep] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, keep]


def bootstrap_auroc_ci(
    y_true: Sequence[str] | np.ndarray,
    probas: Mapping[str, np.ndarray],
    classes: Sequence[str] | np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    differences: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Stratified percentile bootstrap of the macro AUROC of several models (paired resamples).

    The resampling is exactly that of :func:`fusion_utils.evaluation.significance.bootstrap_macro_ci` (same
    generator, same draws for the same ``seed``), restricted to the macro AUROC, which
    :func:`one_vs_rest_auroc` computes about ten times faster than the nine-metric table: on
    the full real tables, with several metadata models, that is seconds instead of minutes.

    Parameters
    ----------
    y_true : sequence of str
        True classes of the evaluation rows.
    probas : mapping
        Model name -> ``(n, classes)`` probabilities in ``classes`` order.
    classes : sequence of str
    n_bootstrap, seed, level
        Resamples, generator seed, interval coverage.
    differences : sequence of (base, new)
        Also report ``new - base`` on the same resamples, as model ``"<new> - <base>"``.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``auroc`` (on all rows), ``ci_low``, ``ci_high``, ``n_bootstrap``.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={n_bootstrap}: pass a positive number of resamples")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: pass a coverage in (0, 1), e.g. 0.95")
    y = np.asarray(y_true).astype(str)
    cls = np.asarray(classes, dtype=str)
    names = list(probas)
    for base, new in differences:
        for m in (base, new):
            if m not in probas:
                raise KeyError(f"difference {new!r} - {base!r}: no model {m!r}; have {names}")
    P = {m: np.asarray(probas[m], dtype=float) for m in names}
    full = {m: macro_auroc(y, P[m], cls) for m in names}
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)]
    boots = {m: np.empty(n_bootstrap) for m in names}
    for b in range(n_bootstrap):
        idx = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
        for m in names:
            boots[m][b] = macro_auroc(y[idx], P[m][idx], cls)
    for base, new in differences:
        key = f"{new} - {base}"
        full[key] = full[new] - full[base]
        boots[key] = boots[new] - boots[base]
    alpha = (1 - level) / 2
    return pd.DataFrame([{"model": m, "auroc": full[m],
                          "ci_low": float(np.nanquantile(boots[m], alpha)),
                          "ci_high": float(np.nanquantile(boots[m], 1 - alpha)),
                          "n_bootstrap": n_bootstrap} for m in full])


def drop_column_ablation(
    estimator: Any,
    X_train: np.ndarray | pd.DataFrame,
    y_train: Sequence[str] | np.ndarray,
    X_test: np.ndarray | pd.DataFrame,
    y_test: Sequence[str] | np.ndarray,
    groups: Mapping[str, Sequence[int | str]] | None = None,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
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
    n_bootstrap, confidence, seed
        Paired bootstrap of the difference (see :func:`paired_bootstrap_delta`).

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
        d = paired_bootstrap_delta(y_test, p_full, p_red, cls, n_bootstrap=n_bootstrap,
                                   confidence=confidence, seed=seed)
        rows.append({"feature": name, "n_columns": len(idx), "auroc_full": d["auroc_a"],
                     "auroc_without": d["auroc_b"], "delta": d["delta"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"]})
    return (pd.DataFrame(rows).sort_values("delta", ascending=False, kind="stable")
            .reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# run folders (thin loaders)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunWeights:
    """The two classifiers of one run folder and a label for it.

    Attributes
    ----------
    run_dir : pathlib.Path
    label : str
        Backbone (and mode/augmentation) from ``features.npz`` info, else the folder name.
    image, fused : ClassifierWeights
    info : dict
        ``features.npz`` info (empty when absent).
    """

    run_dir: Path
    label: str
    image: ClassifierWeights
    fused: ClassifierWeights
    info: dict

    @property
    def mode(self) -> str:
        """``"bn"`` or ``"ft"`` from the features' info (``""`` when unknown)."""
        return str(self.info.get("mode") or "").lower()

    @property
    def augmented(self) -> bool:
        """Whether the features were extracted with augmentation (info ``augment``: ``None``
        or ``False`` without, a description of the augmentation or ``True`` with)."""
        return _is_augmented(self.info.get("augment"))


def _is_augmented(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "aug")
    return bool(value)


def _read_feature_info(path: Path) -> dict:
    import json

    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if "info" not in z.files:
            return {}
        raw = z["info"]
    text = raw.item() if raw.shape == () else str(raw)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return dict(json.loads(text))
    except (TypeError, ValueError):
        return {}


def load_run(run_dir: str | os.PathLike[str]) -> RunWeights:
    """Load ``classifier_image.npz``, ``classifier_fused.npz`` and the features' info of a run."""
    run = Path(run_dir)
    image = ClassifierWeights.load(run / "classifier_image.npz")
    fused = ClassifierWeights.load(run / "classifier_fused.npz")
    info = _read_feature_info(run / "features.npz")
    if info.get("backbone"):
        parts = [str(info["backbone"])]
        if info.get("mode"):
            parts.append(str(info["mode"]).upper())
        parts.append("aug" if _is_augmented(info.get("augment")) else "noaug")
        label = " ".join(parts)
    else:
        label = run.name
    return RunWeights(run_dir=run, label=label, image=image, fused=fused, info=info)


def find_runs(root: str | os.PathLike[str], classes: Sequence[str] | None = None) -> list[Path]:
    """Run folders under ``root`` (any depth) holding ``classifier_fused.npz``, sorted.

    With ``classes``, keep only runs whose fused classifier has exactly those classes (so a
    PTB-XL chapter does not pick up HAM10000 runs).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for f in sorted(root.rglob("classifier_fused.npz")):
        if classes is not None:
            with np.load(f, allow_pickle=False) as z:
                if sorted(z["classes"].astype(str)) != sorted(map(str, classes)):
                    continue
        out.append(f.parent)
    return out


def run_parameters(run_dir: str | os.PathLike[str], stem: str = "04_fusion") -> dict[str, Any]:
    """The papermill parameters of an executed notebook kept in a run folder (``{}`` if none).

    The grid runner keeps ``<run_dir>/<stem>.ipynb``; papermill records the injected parameters
    in its metadata (``metadata.papermill.parameters``).
    """
    import json

    path = Path(run_dir) / f"{stem}.ipynb"
    if not path.is_file():
        return {}
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(nb.get("metadata", {}).get("papermill", {}).get("parameters", {}) or {})


@dataclass(frozen=True)
class FusedData:
    """The fused matrix of a run, rebuilt and checked against the run's own predictions.

    Attributes
    ----------
    X : numpy.ndarray
        ``(n, d)`` fused matrix, columns in the classifier's order.
    feature_names : numpy.ndarray
        ``(d,)`` names (equal to the fused classifier's).
    labels, split, ids : numpy.ndarray
        Per row.
    metadata_columns : list of str
        Raw metadata columns used (without ``meta.``).
    encoding : str
        The ``MetadataEncoder`` encoding that reproduces the classifier's inputs.
    max_abs_diff : float
        Largest difference between the stored classifier's probabilities on the rebuilt matrix
        and ``predictions.parquet`` (NaN when the run has no predictions file).
    """

    X: np.ndarray
    feature_names: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    metadata_columns: list[str]
    encoding: str
    max_abs_diff: float


def load_fused_data(
    run_dir: str | os.PathLike[str],
    manifest: pd.DataFrame,
    *,
    fused: ClassifierWeights | None = None,
    encodings: Sequence[str] = ("paper", "standardised", "onehot"),
    atol: float = 1e-6,
) -> FusedData:
    """Rebuild the fused matrix H of a run from ``features.npz`` and the cohort manifest.

    Notebook 04 stores the classifiers and predictions but not H itself. This re-encodes the
    manifest's metadata exactly as :func:`fusion_utils.fusion.train_image_and_fused` does
    (encoder fitted on the training rows), with the encoding recorded in the run's executed
    ``04_fusion.ipynb`` tried first, and accepts the result only if its column names equal the
    stored classifier's and the classifier's probabilities on it match ``predictions.parquet``
    within ``atol``.

    Parameters
    ----------
    run_dir : path-like
        Run folder with ``features.npz`` and ``classifier_fused.npz`` (and, ideally,
        ``predictions.parquet``).
    manifest : pandas.DataFrame
        The manifest the run was built from (``record_id``, ``meta.*``).
    fused : ClassifierWeights, optional
        The fused classifier (default: loaded from the run).
    encodings : sequence of str
        Encodings to try.
    atol : float
        Tolerance of the check against the stored predictions.

    Returns
    -------
    FusedData
    """
    from fusion_utils.features.extraction import FeatureSet
    from fusion_utils.fusion.metadata import MetadataEncoder
    from fusion_utils.fusion.train import align_metadata, fuse

    run = Path(run_dir)
    fpath = run / "features.npz"
    if not fpath.is_file():
        raise FileNotFoundError(f"no {fpath}: notebook 03 writes features.npz into the run folder")
    features = FeatureSet.load(fpath)
    fused = fused or ClassifierWeights.load(run / "classifier_fused.npz")
    available = [c for c in manifest.columns if str(c).startswith(_META_PREFIX)]
    try:
        groups = feature_groups(fused.feature_names, available)
    except KeyError as exc:
        raise KeyError(f"{run}: the fused classifier uses metadata that the manifest lacks "
                       f"({exc}); pass the manifest the run was built from (manifest_path)") from exc
    columns = list(groups)
    meta = align_metadata(features, manifest, columns)
    split = np.asarray(features.split).astype(str)
    labels = np.asarray(features.labels).astype(str)
    ids = np.asarray(features.ids).astype(str)
    train = split == "train"
    stored = None
    ppath = run / "predictions.parquet"
    if ppath.is_file():
        pred = pd.read_parquet(ppath)
        pred = pred[pred["model"] == "fused"].set_index("record_id")
        cols = [f"prob.{c}" for c in fused.classes]
        if set(cols) <= set(pred.columns) and set(ids) <= set(pred.index.astype(str)):
            pred.index = pred.index.astype(str)
            stored = pred.loc[ids, cols].to_numpy(dtype=float)
    recorded = str(run_parameters(run).get("encoding") or "")
    order = list(dict.fromkeys([e for e in (recorded, *encodings) if e]))
    tried = []
    for enc in order:
        encoder = MetadataEncoder(encoding=enc).fit(meta[train])
        H, names = fuse(features, meta, encoder)
        if list(names) != list(fused.feature_names):
            tried.append(f"{enc}: other column names")
            continue
        if stored is None:
            return FusedData(H, names, labels, split, ids, columns, enc, float("nan"))
        diff = float(np.nanmax(np.abs(fused.predict_proba(H) - stored)))
        if diff <= atol:
            return FusedData(H, names, labels, split, ids, columns, enc, diff)
        tried.append(f"{enc}: probabilities differ by {diff:.2g}")
    raise ValueError(f"{run}: could not rebuild the fused matrix from the manifest "
                     f"({'; '.join(tried)}); pass the manifest the run was built from")


# --------------------------------------------------------------------------------------------
# metadata-only models (chapter 07)
# --------------------------------------------------------------------------------------------

def parse_column_sets(text: str, dataset: str) -> dict[str, tuple[str, ...]]:
    """Parse the ``column_sets`` notebook parameter.

    ``""`` gives :data:`DEFAULT_COLUMN_SETS` for the dataset; otherwise
    ``"name=col,col;name=col,col"`` (metadata names without ``meta.``). ``:`` may replace
    ``=`` (papermill's parameter parser cannot read a ``=`` inside a comment).

    Examples
    --------
    >>> parse_column_sets("age only=age; demo:age,sex", "ptbxl")
    {'age only': ('age',), 'demo': ('age', 'sex')}
    """
    import re

    from fusion_utils.paths import check_dataset

    ds = check_dataset(dataset)
    if not str(text).strip():
        return dict(DEFAULT_COLUMN_SETS[ds])
    out: dict[str, tuple[str, ...]] = {}
    for part in str(text).split(";"):
        if not part.strip():
            continue
        pieces = re.split(r"[=:]", part, maxsplit=1)
        if len(pieces) != 2:
            raise ValueError(f"column set {part.strip()!r} has no '=': write "
                             "'name=col1,col2;name2=col1' e.g. 'patient=age,sex'")
        name, cols = pieces
        names = tuple(c.strip().removeprefix(_META_PREFIX) for c in cols.split(",") if c.strip())
        if not name.strip() or not names:
            raise ValueError(f"column set {part.strip()!r} needs a name and at least one column")
        if name.strip() in out:
            raise ValueError(f"column set name {name.strip()!r} is used twice")
        out[name.strip()] = names
    return out


def fit_metadata_only(
    manifest: pd.DataFrame,
    columns: Sequence[str],
    *,
    standardize: bool = True,
    encoding: str = "paper",
    classes: Sequence[str] | None = None,
    max_epochs: int = 2000,
    tol: float = 1e-6,
) -> tuple[Any, pd.DataFrame]:
    """Fit ``MetadataEncoder -> SoftmaxClassifier`` on the train rows of a manifest.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest with ``label``, ``split`` and the ``meta.<column>`` columns.
    columns : sequence of str
        Metadata columns to use (with or without ``meta.``).
    standardize : bool
        ``SoftmaxClassifier(standardize=...)``. The paper feeds raw encoded values (a year near
        1990 next to a sex of 0/1); plain gradient descent on them converges slowly. With the
        paper's ``l2 = 0`` the optimum is the same model either way (a rescaled column gets a
        rescaled weight) and ``SoftmaxClassifier`` preconditions its solver, so the predictions
        agree; ``True`` is the safe default should a penalty be added (it then acts on
        comparable, standardised weights). Chapter 07 shows the two fits agree.
    encoding : {"paper", "standardised", "onehot"}
        ``MetadataEncoder`` encoding: the paper's category indices, or one indicator column per
        category (a linear model cannot use an arbitrary index order).
    classes : sequence of str, optional
        Class order (default: the manifest's ``attrs["classes"]`` or the sorted labels).
    max_epochs, tol
        Passed to ``SoftmaxClassifier`` (the paper's 2000 epochs and 1e-6).

    Returns
    -------
    (pipeline, predictions)
        The fitted pipeline (its input is the frame of ``meta.`` columns) and a frame of the
        test rows: ``record_id``, ``label``, ``prob.<class>``.
    """
    from sklearn.pipeline import make_pipeline

    from fusion_utils.fusion.metadata import MetadataEncoder
    from fusion_utils.fusion.softmax import SoftmaxClassifier

    cols = [c if str(c).startswith(_META_PREFIX) else _META_PREFIX + str(c) for c in columns]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        have = sorted(c for c in manifest.columns if c.startswith(_META_PREFIX))
        raise KeyError(f"manifest lacks {missing}; it has {have}. Build it with "
                       f"metadata_columns={[c.removeprefix(_META_PREFIX) for c in cols]}")
    for needed in ("label", "split"):
        if needed not in manifest.columns:
            raise KeyError(f"manifest lacks the {needed!r} column")
    train = manifest[manifest["split"] == "train"]
    test = manifest[manifest["split"] == "test"]
    if train.empty or test.empty:
        raise ValueError(f"manifest needs train and test rows; has {manifest['split'].value_counts().to_dict()}")
    cls = list(classes) if classes is not None else list(manifest.attrs.get("classes")
                                                          or sorted(manifest["label"].unique()))
    model = make_pipeline(MetadataEncoder(encoding=encoding),
                          SoftmaxClassifier(max_epochs=max_epochs, tol=tol, standardize=standardize))
    model.fit(train[cols], train["label"].astype(str).to_numpy())
    proba = _proba(model, test[cols])
    fitted = list(np.asarray(model.classes_, dtype=str))
    order = [fitted.index(c) if c in fitted else -1 for c in cls]
    full = np.zeros((len(test), len(cls)))
    for k, j in enumerate(order):
        if j >= 0:
            full[:, k] = proba[:, j]
    pred = pd.DataFrame({"record_id": test["record_id"].astype(str).to_numpy()
                         if "record_id" in test.columns else np.arange(len(test)).astype(str),
                         "label": test["label"].astype(str).to_numpy()})
    for k, c in enumerate(cls):
        pred[f"prob.{c}"] = full[:, k]
    return model, pred

