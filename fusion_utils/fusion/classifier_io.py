"""The one reader and writer of classifier files, ``classifier_{image,fused}.npz``.

Format (ARCHITECTURE.md, "Classifier outputs"): ``coef`` (classes x features, rows in the
dataset's class order; a NaN row for a class absent from training), ``intercept`` (classes,),
``feature_names`` (features,), ``classes`` (classes,) and, optionally, ``feature_std``
(features,: the standard deviation of each column on the training split).

In memory a classifier file is a :class:`fusion_utils.interpret.weights.ClassifierWeights`
(which checks the shapes and scores like an estimator); ``ClassifierWeights.save``/``load`` call
the two functions here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion_utils.errors import RunFolderError
from fusion_utils.io import save_npz_atomic

if TYPE_CHECKING:  # pragma: no cover
    from fusion_utils.interpret.weights import ClassifierWeights

__all__ = ["CLASSIFIER_KEYS", "classifier_from_estimator", "load_classifier", "save_classifier"]

#: keys every classifier file holds (``feature_std`` is optional).
CLASSIFIER_KEYS: tuple[str, ...] = ("coef", "intercept", "feature_names", "classes")


def classifier_from_estimator(model: Any, feature_names: Sequence[str], classes: Sequence[str],
                              X_train: np.ndarray | None = None) -> ClassifierWeights:
    """The weights of a fitted linear classifier with rows in ``classes`` order.

    A class of ``classes`` that the model never saw in training gets a NaN row (its probability
    is then 0, see ``ClassifierWeights.predict_proba``).

    Parameters
    ----------
    model : fitted classifier
        With ``coef_``, ``intercept_`` and ``classes_`` (``SoftmaxClassifier``,
        ``LogisticRegression``).
    feature_names : sequence of str
        Names of the model's input columns.
    classes : sequence of str
        The dataset's class order (:func:`fusion_utils.data.manifest.class_order`).
    X_train : numpy.ndarray, optional
        The training matrix; its per-column standard deviation becomes ``feature_std``.
    """
    from fusion_utils.interpret.weights import ClassifierWeights

    fitted = [str(c) for c in model.classes_]
    unknown = sorted(set(fitted) - {str(c) for c in classes})
    if unknown:
        raise ValueError(f"the model was fitted on class(es) {unknown} outside the class order "
                         f"{list(classes)}")
    coef_ = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept_ = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if len(fitted) == 2 and coef_.shape[0] == 1:
        # a binary scikit-learn model keeps one row, the logit of classes_[1] against classes_[0]:
        # as softmax rows that is 0 for classes_[0] and the stored row for classes_[1]
        coef_ = np.vstack([np.zeros_like(coef_), coef_])
        intercept_ = np.concatenate([np.zeros_like(intercept_), intercept_])
    coef = np.full((len(classes), coef_.shape[1]), np.nan)
    intercept = np.full(len(classes), np.nan)
    for k, c in enumerate(classes):
        if str(c) in fitted:
            j = fitted.index(str(c))
            coef[k], intercept[k] = coef_[j], intercept_[j]
    std = None if X_train is None else np.asarray(X_train, dtype=np.float64).std(axis=0)
    return ClassifierWeights(coef=coef, intercept=intercept,
                             feature_names=np.asarray(feature_names, dtype=str),
                             classes=np.asarray(classes, dtype=str), feature_std=std)


def save_classifier(path: str | os.PathLike[str], weights: ClassifierWeights) -> Path:
    """Write ``weights`` as a classifier ``.npz`` (atomic) and return the path."""
    arrays = {"coef": np.asarray(weights.coef, dtype=np.float64),
              "intercept": np.asarray(weights.intercept, dtype=np.float64),
              "feature_names": np.asarray(weights.feature_names, dtype=str),
              "classes": np.asarray(weights.classes, dtype=str)}
    if weights.feature_std is not None:
        arrays["feature_std"] = np.asarray(weights.feature_std, dtype=np.float64)
    return save_npz_atomic(path, **arrays)


def load_classifier(path: str | os.PathLike[str]) -> ClassifierWeights:
    """Read a classifier ``.npz`` written by :func:`save_classifier`.

    Raises
    ------
    FileNotFoundError
        When the file is missing (the message says that notebook 04 writes it).
    fusion_utils.errors.RunFolderError
        When the file is damaged, lacks a key or has inconsistent shapes (the message names it).
    """
    from fusion_utils.interpret.weights import ClassifierWeights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier file {path}: notebook 04 (04_fusion) writes "
                                "classifier_image.npz and classifier_fused.npz into its run_dir")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in CLASSIFIER_KEYS if k not in z.files]
            if missing:
                raise RunFolderError(f"{path}: not a classifier file, it lacks {missing} "
                                     f"(it has {sorted(z.files)})")
            arrays = {k: z[k] for k in (*CLASSIFIER_KEYS, "feature_std") if k in z.files}
    except RunFolderError:
        raise
    except Exception as exc:  # BadZipFile, EOFError, ValueError, OSError on a damaged file
        raise RunFolderError(f"{path}: damaged classifier file ({type(exc).__name__}: {exc}); "
                             "rerun notebook 04 (04_fusion)") from exc
    std = arrays.get("feature_std")
    try:
        return ClassifierWeights(coef=arrays["coef"].astype(np.float64),
                                 intercept=arrays["intercept"].astype(np.float64),
                                 feature_names=arrays["feature_names"].astype(str),
                                 classes=arrays["classes"].astype(str),
                                 feature_std=None if std is None else std.astype(np.float64))
    except ValueError as exc:
        raise RunFolderError(f"{path}: {exc}") from exc
