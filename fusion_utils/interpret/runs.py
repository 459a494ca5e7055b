"""Reading a run folder for the interpretability chapter: weights, parameters and the fused data.

Every file is read through :class:`fusion_utils.run_folder.RunFolder`; a run's parameters come
from its ``run.json`` only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.interpret.weights import _META_PREFIX, ClassifierWeights
from fusion_utils.run_folder import RunFolder

__all__ = ['FusedData', 'RunWeights', 'find_runs', 'load_fused_data', 'load_run', 'pick_main_run',
           'run_parameters']


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
        Backbone (and mode/augmentation) from ``run.json``, else the folder name.
    image, fused : ClassifierWeights
    info : dict
        The run's parameters (:meth:`~fusion_utils.run_folder.RunFolder.parameters`; empty
        when the run has no ``run.json``).
    """

    run_dir: Path
    label: str
    image: ClassifierWeights
    fused: ClassifierWeights
    info: dict

    @property
    def mode(self) -> str:
        """``"bn"`` or ``"ft"`` from the run's parameters (``""`` when unknown)."""
        return str(self.info.get("mode") or "").lower()

    @property
    def augmented(self) -> bool:
        """Whether the features were extracted with augmentation (``augment``: ``None``
        or ``False`` without, a description of the augmentation or ``True`` with)."""
        return _is_augmented(self.info.get("augment"))


def _is_augmented(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "aug")
    return bool(value)


def _label(params: dict[str, Any], fallback: str) -> str:
    if not params.get("backbone"):
        return fallback
    parts = [str(params["backbone"])]
    if params.get("mode"):
        parts.append(str(params["mode"]).upper())
    parts.append("aug" if _is_augmented(params.get("augment")) else "noaug")
    return " ".join(parts)


def load_run(run_dir: str | os.PathLike[str]) -> RunWeights:
    """Load a run's two classifiers and its parameters (``run.json``, through
    :class:`~fusion_utils.run_folder.RunFolder`).

    The label is "backbone MODE aug/noaug" from ``run.json``; a run without ``run.json`` (its
    classifiers written by hand) is labelled by its folder name and has empty ``info``.
    """
    run = RunFolder(run_dir)
    image = run.read_classifier("image")
    fused = run.read_classifier("fused")
    info = run.parameters() if run.has("run.json") else {}
    return RunWeights(run_dir=run.path, label=_label(info, run.path.name), image=image,
                      fused=fused, info=info)


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
            fused = RunFolder(f.parent).read_classifier("fused")
            if sorted(fused.classes.astype(str)) != sorted(map(str, classes)):
                continue
        out.append(f.parent)
    return out


def run_parameters(run_dir: str | os.PathLike[str], stage: str | None = None) -> dict[str, Any]:
    """The parameters that produced a run, read from its ``run.json`` only.

    Parameters
    ----------
    run_dir : path-like
        The run folder.
    stage : str, optional
        One stage's parameters (``"features"``, ``"fusion"``, ...); default: all merged
        (:meth:`fusion_utils.run_folder.RunFolder.parameters`).

    Raises
    ------
    FileNotFoundError
        When the run has no ``run.json`` (the message says which notebooks write it).
    """
    return RunFolder(run_dir).parameters(stage)


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
    atol: float = 1e-6,
) -> FusedData:
    """Rebuild the fused matrix H of a run from ``features.npz``, ``run.json`` and the manifest.

    Notebook 04 stores the classifiers and predictions but not H itself. This re-encodes the
    manifest's metadata exactly as :func:`fusion_utils.fusion.train.train_image_and_fused` did
    (encoder fitted on the training rows), with the metadata columns and the encoding recorded
    in the ``fusion`` stage of the run's ``run.json``, and checks the result: its column names
    must equal the stored classifier's, and the classifier's probabilities on it must match
    ``predictions.parquet`` within ``atol``.

    Parameters
    ----------
    run_dir : path-like
        Run folder with ``run.json``, ``features.npz`` and ``classifier_fused.npz`` (and,
        ideally, ``predictions.parquet``).
    manifest : pandas.DataFrame
        The manifest the run was built from (``record_id``, ``meta.*``).
    fused : ClassifierWeights, optional
        The fused classifier (default: loaded from the run).
    atol : float
        Tolerance of the check against the stored predictions.

    Returns
    -------
    FusedData

    Raises
    ------
    KeyError
        When the manifest lacks a metadata column of the run, or ``run.json`` has no
        ``fusion`` stage.
    ValueError
        When the rebuilt matrix does not reproduce the stored classifier's inputs.
    """
    from fusion_utils.fusion.metadata import MetadataEncoder
    from fusion_utils.fusion.train import align_metadata, fuse

    run = RunFolder(run_dir)
    params = run.parameters("fusion")
    for key in ("metadata_columns", "encoding"):
        if key not in params:
            raise KeyError(f"{run.run_json}: the fusion stage does not record {key!r}; rerun "
                           "notebook 04 on this run folder")
    columns = [str(c) for c in params["metadata_columns"]]
    encoding = str(params["encoding"])
    features = run.read_features()
    fused = fused or run.read_classifier("fused")
    lacking = [c for c in columns if f"{_META_PREFIX}{c}" not in manifest.columns]
    if lacking:
        raise KeyError(f"{run.path}: the run fused metadata column(s) {lacking} that the manifest "
                       "lacks; pass the manifest the run was built from (manifest_path "
                       f"{params.get('manifest_path')!r} in run.json)")
    meta = align_metadata(features, manifest, columns)
    split = np.asarray(features.split).astype(str)
    labels = np.asarray(features.labels).astype(str)
    ids = np.asarray(features.ids).astype(str)
    encoder = MetadataEncoder(encoding=encoding).fit(meta[split == "train"])
    H, names = fuse(features, meta, encoder)
    if list(names) != list(fused.feature_names):
        raise ValueError(f"{run.path}: the fused matrix rebuilt with encoding {encoding!r} and "
                         f"columns {columns} has other column names than classifier_fused.npz; "
                         "pass the manifest the run was built from")
    diff = float("nan")
    if run.has("predictions.parquet"):
        pred = run.read_predictions()
        pred = pred[pred["model"] == "fused"].set_index("record_id")
        pred.index = pred.index.astype(str)
        cols = [f"prob.{c}" for c in fused.classes]
        if not set(cols) <= set(pred.columns) or not set(ids) <= set(pred.index):
            raise ValueError(f"{run.predictions_path}: does not hold the fused classifier's "
                             "probabilities for every record of features.npz; rerun notebook 04")
        stored = pred.loc[ids, cols].to_numpy(dtype=float)
        diff = float(np.nanmax(np.abs(fused.predict_proba(H) - stored)))
        if diff > atol:
            raise ValueError(f"{run.path}: the classifier's probabilities on the rebuilt matrix "
                             f"differ from predictions.parquet by {diff:.2g} (> {atol:g}); pass "
                             "the manifest the run was built from")
    return FusedData(H, names, labels, split, ids, columns, encoding, diff)


def pick_main_run(loaded: list[RunWeights], name: str = "") -> RunWeights:
    """The run a chapter reads in detail: the one ``name`` designates, else the paper's Fig. 5 run.

    Parameters
    ----------
    loaded : list of RunWeights
        The runs already read; a run folder named by path but not among them is read and
        appended to ``loaded``.
    name : str
        A run folder (path or folder name) or a run label; empty: the first fine-tuned run with
        augmentation (the paper's Fig. 5), else the first run.

    Raises
    ------
    ValueError
        When ``name`` matches no run and is no run folder.
    """
    name = name.strip()
    if name:
        for run in loaded:
            if name in (str(run.run_dir), run.run_dir.name, run.label):
                return run
        if (Path(name) / "classifier_fused.npz").is_file():
            extra = load_run(name)
            loaded.append(extra)
            return extra
        raise ValueError(f"main_run={name!r} is none of the runs: "
                         f"{', '.join(r.run_dir.name for r in loaded)}")
    for run in loaded:
        if run.mode == "ft" and run.augmented:
            return run
    return loaded[0]
