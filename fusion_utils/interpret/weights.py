"""Classifier weights: the image and metadata blocks, scale-aware (standardised) weights, and the
encoded metadata columns grouped by the raw column they come from (Thomas 2021, Figs. 5-6).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["IMAGE_PREFIX", "ClassifierWeights", "WeightBlocks", "block_summary", "feature_groups",
           "image_mask", "reading_comparison", "source_column", "split_blocks",
           "standardised_weights", "weight_scale_table", "weights_frame"]

#: Prefix of the image-feature columns (``features.FeatureSet.feature_names``).
IMAGE_PREFIX = "img."
_META_PREFIX = "meta."




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
        if (np.shape(self.intercept) != (k,) or len(self.classes) != k
                or len(self.feature_names) != d):
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
        """Read ``classifier_{image,fused}.npz``
        (:func:`fusion_utils.fusion.classifier_io.load_classifier`)."""
        from fusion_utils.fusion.classifier_io import load_classifier

        return load_classifier(path)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``.npz`` that :meth:`load` reads
        (:func:`fusion_utils.fusion.classifier_io.save_classifier`)."""
        from fusion_utils.fusion.classifier_io import save_classifier

        return save_classifier(path, self)

    @property
    def classes_(self) -> np.ndarray:
        """Alias of ``classes`` (scikit-learn's name), so the stored model scores like an
        estimator."""
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
        raise ValueError(f"class order differs: image-only {list(a.classes)}, "
                         f"fused {list(b.classes)}")
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


