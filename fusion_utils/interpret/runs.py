"""Reading a run folder for the interpretability chapter: weights, features and the fused data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.interpret.weights import _META_PREFIX, ClassifierWeights, feature_groups

__all__ = ['FusedData', 'RunWeights', 'find_runs', 'load_fused_data', 'load_run', 'run_parameters']


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


