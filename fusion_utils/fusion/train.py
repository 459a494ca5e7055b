"""Fusion of image features and encoded metadata, the paper's Eq. (3): H = [F(X), G(M)].

:func:`align_metadata` puts the manifest's metadata rows in the order of a feature set (by
``record_id``); :func:`fuse` concatenates the image features with the encoded metadata and returns
the column names (``img.0000`` ... then the encoder's names such as ``age``,
``recording_date.year``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.errors import ClassifierError

__all__ = [
    "TRAININGS",
    "align_metadata",
    "check_classifier_inputs",
    "default_run_dir",
    "feature_matrix",
    "fuse",
    "manifest_classes",
    "metadata_frame",
    "resolve_run_dir",
    "train_image_and_fused",
    "training_params",
    "write_run",
]


#: The classifier trainings notebook 04 offers (its ``training`` parameter) and the
#: :class:`~fusion_utils.fusion.softmax.SoftmaxClassifier` solver each one uses.
TRAININGS: dict[str, str] = {
    # preconditioned L-BFGS run until the gradient norm is below tol (or max_epochs)
    "converged": "lbfgs",
    # MATLAB R2021a's trainSoftmaxLayer: trainscg from zero weights, max_epochs, min_grad tol
    "paper": "trainscg",
}


def training_params(training: str, classifier_params: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """``classifier_params`` with the solver of ``training`` (a key of :data:`TRAININGS`).

    ``"converged"``: ``solver="lbfgs"``, the preconditioned L-BFGS fit run to the gradient
    tolerance ``tol`` (the paper's stated stopping rule, met). ``"paper"``:
    ``solver="trainscg"``, MATLAB's ``trainSoftmaxLayer`` as it runs (scaled conjugate gradient
    from zero weights, ``max_epochs`` epochs or minimum gradient ``tol``, no penalty, no input
    scaling); see :class:`~fusion_utils.fusion.softmax.SoftmaxClassifier`.

    Raises
    ------
    ValueError
        For an unknown ``training``, a ``solver`` in ``classifier_params`` that contradicts it,
        or ``training="paper"`` with ``l2 != 0`` or ``standardize=True`` (MATLAB's
        ``trainSoftmaxLayer`` has neither).
    """
    if training not in TRAININGS:
        raise ValueError(f"training={training!r}: expected one of {', '.join(TRAININGS)} "
                         "(converged: L-BFGS to the gradient tolerance; paper: MATLAB's trainscg)")
    params = dict(classifier_params or {})
    solver = TRAININGS[training]
    if params.get("solver", solver) != solver:
        raise ValueError(f"training={training!r} trains with solver={solver!r}, but the "
                         f"classifier parameters say solver={params['solver']!r}; pass one")
    if training == "paper" and (params.get("l2", 0) != 0 or params.get("standardize", False)):
        raise ValueError(
            f"training='paper' with l2={params.get('l2')!r}, "
            f"standardize={params.get('standardize')!r}: MATLAB's trainSoftmaxLayer has no "
            "penalty and no input scaling; pass l2=0 and standardize=False, or "
            "training='converged'")
    params["solver"] = solver
    return params


def feature_matrix(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, feature_names)`` from a FeatureSet-like object or an ``(X, names)`` pair."""
    if isinstance(features, tuple | list) and len(features) == 2:
        X, names = features
    elif hasattr(features, "X") and hasattr(features, "feature_names"):
        X, names = features.X, features.feature_names
    else:
        raise TypeError("features must be a FeatureSet (with .X and .feature_names) or a pair "
                        f"(X, feature_names); got {type(features).__name__}")
    X = np.asarray(X)
    names = np.asarray(names, dtype=str)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"features: X has shape {X.shape} but {len(names)} feature names")
    return X, names


def metadata_frame(manifest: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``meta.*`` columns of a manifest (all of them, or ``columns`` with/without prefix)."""
    if columns is None or len(columns) == 0:
        cols = [c for c in manifest.columns if str(c).startswith("meta.")]
        if not cols:
            raise ValueError("the manifest has no meta.* columns; build it with metadata columns")
    else:
        cols = [c if str(c).startswith("meta.") else f"meta.{c}" for c in columns]
        missing = [c for c in cols if c not in manifest.columns]
        if missing:
            have = [c for c in manifest.columns if str(c).startswith("meta.")]
            raise KeyError(f"manifest lacks {missing}; it has {have}")
    return manifest[cols]


def align_metadata(features: Any, manifest: pd.DataFrame, columns: Sequence[str] | None = None,
                   ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Metadata rows of ``manifest`` in the row order of ``features`` (matched by ``record_id``).

    Parameters
    ----------
    features : FeatureSet-like
        Needs ``.ids`` unless ``ids`` is given.
    manifest : DataFrame
        With ``record_id`` and ``meta.*`` columns (ARCHITECTURE.md).
    columns : sequence of str, optional
        Metadata columns to keep (default: all ``meta.*``).
    ids : sequence of str, optional
        Record ids in feature order (overrides ``features.ids``).

    Raises
    ------
    KeyError
        When a feature row has no manifest row; the message lists a few missing ids.
    """
    if "record_id" not in manifest.columns:
        raise KeyError("manifest has no record_id column (see ARCHITECTURE.md)")
    order = np.asarray(ids if ids is not None else features.ids).astype(str)
    table = manifest.assign(record_id=manifest["record_id"].astype(str))
    if table["record_id"].duplicated().any():
        raise ValueError("manifest record_id is not unique")
    table = table.set_index("record_id")
    missing = [i for i in order if i not in table.index]
    if missing:
        raise KeyError(f"{len(missing)} feature row(s) have no manifest row, e.g. {missing[:5]}; "
                       "extract features from the same manifest")
    meta = metadata_frame(table, columns).loc[order]
    return meta.reset_index(drop=True)


def fuse(features: Any, metadata: pd.DataFrame | None,
         encoder: Any) -> tuple[np.ndarray, np.ndarray]:
    """H = [F(X), G(M)] with named columns.

    Parameters
    ----------
    features : FeatureSet-like or (X, feature_names)
        Image features, one row per record.
    metadata : DataFrame
        Metadata rows in the same order (see :func:`align_metadata`).
    encoder : fitted MetadataEncoder (or any fitted transformer with ``get_feature_names_out``)
        Fit it on the training rows only, then fuse every split with it.

    Returns
    -------
    (H, names)
        ``H`` float64 (n, d + d'), names (d + d',).
    """
    X, names = feature_matrix(features)
    if metadata is None:
        return X.astype(np.float64), names
    if len(metadata) != len(X):
        raise ValueError(f"metadata has {len(metadata)} rows but the features have {len(X)}; "
                         "align them with align_metadata first")
    G = np.asarray(encoder.transform(metadata), dtype=np.float64)
    meta_names = np.asarray(encoder.get_feature_names_out(), dtype=str)
    clash = set(meta_names) & set(names)
    if clash:
        raise ValueError(f"metadata names {sorted(clash)} clash with image feature names")
    return np.hstack([X.astype(np.float64), G]), np.concatenate([names, meta_names])


# --------------------------------------------------------------------------------------------
# notebook 04: train the image-only and the fused classifiers, write the run folder


def default_run_dir(dataset: str) -> Path:
    """Run folder used when a notebook's ``run_dir`` is empty: ``<root>/runs/single/<dataset>``."""
    from fusion_utils.run_folder import RunFolder

    return RunFolder.for_notebook(dataset, None).path


def resolve_run_dir(dataset: str, run_dir: str | None) -> Path:
    """A notebook's ``run_dir`` parameter: empty means :func:`default_run_dir`
    (:meth:`fusion_utils.run_folder.RunFolder.for_notebook`)."""
    from fusion_utils.run_folder import RunFolder

    return RunFolder.for_notebook(dataset, run_dir).path


def _ordered_proba(model: Any, X: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Probabilities with columns in ``classes`` order (0 for a class absent from training)."""
    proba = model.predict_proba(X)
    fitted = [str(c) for c in model.classes_]
    out = np.zeros((len(X), len(classes)))
    for k, c in enumerate(classes):
        if c in fitted:
            out[:, k] = proba[:, fitted.index(c)]
    return out


def manifest_classes(manifest: pd.DataFrame, labels: Sequence[str] | None = None) -> list[str]:
    """The class order of a manifest's dataset (:func:`fusion_utils.data.manifest.class_order`).

    The dataset comes from ``manifest.attrs['dataset']`` or the ``dataset`` column; ``labels``
    outside that order are refused.
    """
    from fusion_utils.data.manifest import class_order

    dataset = manifest.attrs.get("dataset") if hasattr(manifest, "attrs") else None
    if not dataset:
        found = (sorted(set(manifest["dataset"].astype(str)))
                 if "dataset" in manifest.columns else [])
        if len(found) != 1:
            raise ValueError("the manifest names no single dataset (attrs['dataset'] or a "
                             f"'dataset' column; found {found}): build it with build_manifest")
        dataset = found[0]
    classes = [str(c) for c in class_order(str(dataset))]
    if labels is not None:
        unknown = sorted({str(x) for x in labels} - set(classes))
        if unknown:
            raise ValueError(f"label(s) {unknown} are not {dataset} classes ({classes})")
    return classes


def _classifier_settings(model: Any) -> dict[str, Any]:
    """The classifier's parameters as ``run.json`` records them (dtype by name)."""
    params = dict(model.get_params())
    if "dtype" in params:
        params["dtype"] = np.dtype(params["dtype"]).name
    return params


def check_classifier_inputs(M: Any, names: Sequence[str], ids: Sequence[str], *,
                            model: str = "fused") -> np.ndarray:
    """The classifier's input matrix as float64, or a clear error naming columns and records.

    Text, NaN or infinite values would otherwise reach the optimiser, or scikit-learn's
    validation, whose messages name neither the column nor the record.

    Raises
    ------
    fusion_utils.errors.ClassifierError
        Naming up to five offending columns (``img.0012``, ``meta.age``, ...) and records.
    """
    names = [str(n) for n in names]
    try:
        A = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raw = np.asarray(M, dtype=object)
        bad_cols = [names[j] for j in range(raw.shape[1])
                    if not all(isinstance(v, int | float | np.number) for v in raw[:, j])]
        raise ClassifierError(
            f"the {model} classifier's inputs hold values that are not numbers in column(s) "
            f"{bad_cols[:5]} ({exc}); encode them with MetadataEncoder or fix the table"
        ) from exc
    bad = ~np.isfinite(A)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        rows = np.flatnonzero(bad.any(axis=1))
        raise ClassifierError(
            f"the {model} classifier's inputs hold NaN or infinite values in {len(cols)} "
            f"column(s), e.g. {[names[j] for j in cols[:5]]}, for {len(rows)} record(s), e.g. "
            f"{[str(ids[i]) for i in rows[:5]]}; re-extract the features (a damaged cache?) or "
            "encode missing metadata (MetadataEncoder maps it to -1)")
    return A


def train_image_and_fused(features: Any, manifest: pd.DataFrame, *,
                          metadata_columns: Sequence[str] | None = None, encoding: str = "paper",
                          classifier_params: dict[str, Any] | None = None,
                          training: str = "converged") -> dict[str, Any]:
    """Train the image-only and the fused softmax classifiers on the training split.

    Parameters
    ----------
    features : FeatureSet
        ``ids``, ``labels``, ``split``, ``X``, ``feature_names``.
    manifest : DataFrame
        The cohort manifest (``record_id`` and ``meta.*`` columns; its dataset gives the class
        order, :func:`manifest_classes`).
    metadata_columns : sequence of str, optional
        Metadata columns to fuse (default: all ``meta.*``).
    encoding : str
        :class:`~fusion_utils.fusion.metadata.MetadataEncoder` encoding.
    classifier_params : dict, optional
        Passed to :class:`~fusion_utils.fusion.softmax.SoftmaxClassifier` (its ``solver`` is
        set by ``training``).
    training : {"converged", "paper"}
        How both classifiers are trained (:data:`TRAININGS`, :func:`training_params`):
        preconditioned L-BFGS to the gradient tolerance, or MATLAB's ``trainscg`` as the paper
        ran it.

    Returns
    -------
    dict
        ``classes``, ``encoder``, ``models`` ({"image", "fused"}), ``matrices``
        ({"image": (X, names), "fused": (H, names)}), ``train`` (boolean mask),
        ``predictions`` (tidy frame, every split), ``fit`` (per-model fit summary) and
        ``parameters`` (``metadata_columns`` without ``meta.``, ``encoding``, ``training`` and every
        classifier setting by its SoftmaxClassifier name: ``l2``, ``tol``, ``max_epochs``,
        ``solver``, ``standardize``, ``random_state``, ...; :func:`write_run` records them in
        ``run.json``).
    """
    from fusion_utils.fusion.metadata import MetadataEncoder
    from fusion_utils.fusion.softmax import SoftmaxClassifier

    X, img_names = feature_matrix(features)
    split = np.asarray(features.split).astype(str)
    labels = np.asarray(features.labels).astype(str)
    train = split == "train"
    if not train.any():
        raise ValueError("the feature set has no 'train' rows")
    meta = align_metadata(features, manifest, metadata_columns)
    encoder = MetadataEncoder(encoding=encoding).fit(meta[train])
    H, fused_names = fuse(features, meta, encoder)
    classes = manifest_classes(manifest, labels)
    params = training_params(training, classifier_params)
    matrices = {"image": (X.astype(np.float64), img_names), "fused": (H, fused_names)}
    models, fits, frames = {}, {}, []
    ids = np.asarray(features.ids).astype(str)
    for name, (M, names) in matrices.items():
        M = check_classifier_inputs(M, names, ids, model=name)
        model = SoftmaxClassifier(**params).fit(M[train], labels[train])
        models[name] = model
        fits[name] = {"fit_seconds": model.fit_time_, "epochs": model.n_epochs_,
                      "grad_norm": model.grad_norm_, "loss": model.loss_,
                      "converged": bool(model.converged_), "stop_reason": model.stop_reason_,
                      "n_features": int(M.shape[1]), "training": training,
                      "solver": model.solver}
        proba = _ordered_proba(model, M, classes)
        frame = pd.DataFrame({"record_id": np.asarray(features.ids).astype(str), "split": split,
                              "label": labels, "model": name})
        for k, c in enumerate(classes):
            frame[f"prob.{c}"] = proba[:, k]
        frames.append(frame)
    parameters = {"metadata_columns": [str(c).removeprefix("meta.") for c in meta.columns],
                  "encoding": str(encoding), "training": training,
                  **_classifier_settings(models["fused"])}
    return {"classes": classes, "encoder": encoder, "models": models, "matrices": matrices,
            "train": train, "predictions": pd.concat(frames, ignore_index=True), "fit": fits,
            "parameters": parameters}


def write_run(run_dir: Any, result: dict[str, Any], extraction_info: dict[str, Any] | None = None,
              *, manifest_path: str | os.PathLike[str] | None = None,
              dataset: str | None = None) -> dict[str, Any]:
    """Write notebook 04's part of the run folder through
    :class:`~fusion_utils.run_folder.RunFolder`.

    ``predictions.parquet``, ``classifier_{image,fused}.npz``, ``timings.json`` and the
    ``fusion`` stage of ``run.json`` (``result["parameters"]``: metadata columns, encoding,
    classifier settings; plus the manifest's path and hash when ``manifest_path`` is given).

    Returns the timings written (seconds): ``extraction`` (features info ``seconds``),
    ``finetune`` (``ft_seconds``), ``fit_image``, ``fit_fused``, ``training`` (the
    classifier training, :data:`TRAININGS`) and each fit's summary.
    """
    from fusion_utils.fusion.classifier_io import classifier_from_estimator
    from fusion_utils.run_folder import RunFolder

    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    info = extraction_info or {}
    run.write_predictions(result["predictions"])
    for name, model in result["models"].items():
        M, names = result["matrices"][name]
        run.write_classifier(name, classifier_from_estimator(model, names, result["classes"],
                                                             M[result["train"]]))
    timings = {"extraction": info.get("seconds"), "finetune": info.get("ft_seconds"),
               "fit_image": result["fit"]["image"]["fit_seconds"],
               "fit_fused": result["fit"]["fused"]["fit_seconds"],
               "training": result["parameters"].get("training"),
               "classifier": result["fit"]}
    run.write_timings(timings)
    run.record("fusion", {**result["parameters"], "classes": list(result["classes"])},
               dataset=dataset or info.get("dataset"), manifest_path=manifest_path)
    return timings
