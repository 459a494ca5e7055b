"""What the reduced resolution costs: the same HAM10000 images at full size and at 200x150.

``../shared/data/ham10000`` holds all 10,015 images at 200x150 (``images_200x150/``) and 273 of
them also as the 600x450 originals (``images/``). On those 273 :func:`compare_resolutions`
extracts the features of both copies with the same backbone and reports, per image, the cosine
similarity of the two feature vectors and the class that a trained linear classifier
(``classifier_image.npz`` of a run, trained on 200x150 features) predicts from each; the
summary is their mean and the share of images whose predicted class does not change.

Both copies go through the same preprocessing (resize to the network's input size, the
backbone's normalisation), so a difference comes from the information lost in the downscaled
JPEG, not from the pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ResolutionComparison", "compare_resolutions", "paired_manifests",
           "predict_with_weights", "summary_by_split"]


@dataclass
class ResolutionComparison:
    """Per-image comparison and its summary.

    Attributes
    ----------
    per_image : pandas.DataFrame
        ``record_id``, ``label``, ``cosine`` and, with a classifier, ``pred_full``,
        ``pred_reduced``, ``agree``.
    summary : dict
        ``n_images``, ``backbone``, ``full`` and ``reduced`` folders and resolutions,
        ``cosine_mean``, ``cosine_median``, ``cosine_min`` and, with a classifier,
        ``agreement`` (share of images with the same predicted class), ``accuracy_full``,
        ``accuracy_reduced``.
    """

    per_image: pd.DataFrame
    summary: dict[str, Any]

    def sentence(self) -> str:
        """One sentence with the figures, naming the data."""
        s = self.summary
        text = (f"On the {s['n_images']} HAM10000 images present at both resolutions "
                f"({s['full_resolution']} originals vs {s['reduced_resolution']} copies), the "
                f"{s['backbone']} features have a mean cosine similarity of "
                f"{s['cosine_mean']:.4f} (median {s['cosine_median']:.4f}, lowest "
                f"{s['cosine_min']:.4f})")
        if "agreement" in s:
            text += (f"; the image-only classifier predicts the same class for "
                     f"{s['agreement']:.1%} of them (accuracy {s['accuracy_full']:.1%} on the "
                     f"originals, {s['accuracy_reduced']:.1%} on the copies)")
        test = (s.get("by_split") or {}).get("test")
        if test and "agreement" in test:
            text += (f". On the {test['n_images']} of them in the test split (unseen by the "
                     f"classifier) the class agrees for {test['agreement']:.1%} (accuracy "
                     f"{test['accuracy_full']:.1%} on the originals, "
                     f"{test['accuracy_reduced']:.1%} on the copies)")
        return text + "."


def paired_manifests(data_dir: str | os.PathLike[str], full: str = "images",
                     reduced: str = "images_200x150") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifests of the images present in both folders, same rows in the same order."""
    from fusion_utils.data.manifest import build_manifest

    hi, _ = build_manifest("ham10000", data_dir, image_dir=full, fractions=(1.0, 0.0, 0.0))
    lo, _ = build_manifest("ham10000", data_dir, image_dir=reduced, fractions=(1.0, 0.0, 0.0))
    common = sorted(set(hi["record_id"]) & set(lo["record_id"]))
    if not common:
        raise ValueError(f"{data_dir}: no image is present in both {full}/ and {reduced}/")
    hi = hi.set_index("record_id").loc[common].reset_index()
    lo = lo.set_index("record_id").loc[common].reset_index()
    hi.attrs, lo.attrs = dict(hi.attrs), dict(lo.attrs)
    return hi, lo


def predict_with_weights(weights: Any, X: np.ndarray) -> np.ndarray:
    """Predicted class names of a linear classifier file (``coef``, ``intercept``, ``classes``).

    ``argmax(X @ coef.T + intercept)``; a class absent from training (a NaN row) never wins.
    Written out rather than through an estimator so that it reads the saved file directly.
    """
    coef = np.asarray(weights.coef, dtype=float)
    scores = X @ np.nan_to_num(coef, nan=0.0).T + np.asarray(weights.intercept, dtype=float)
    scores[:, np.isnan(coef).any(axis=1)] = -np.inf
    return np.asarray(weights.classes)[scores.argmax(axis=1)]


def compare_resolutions(data_dir: str | os.PathLike[str], *,
                        backbone: str = "efficientnet_lite0",
                        classifier: str | os.PathLike[str] | Any | None = None,
                        full: str = "images", reduced: str = "images_200x150",
                        batch_size: int = 32, use_cache: bool = True,
                        progress: bool = False,
                        splits: pd.Series | None = None) -> ResolutionComparison:
    """Features (and predictions) of the same images at full and at reduced resolution.

    Parameters
    ----------
    data_dir : path-like
        HAM10000 folder with both image folders.
    backbone : str
        Registered backbone with ImageNet weights (BN features).
    classifier : path-like or ClassifierWeights, optional
        An image-only classifier trained on this backbone's features (a run's
        ``classifier_image.npz``); without it only the cosines are computed.
    full, reduced : str
        The two image folders.
    batch_size, use_cache, progress
        Passed to :func:`fusion_utils.features.extraction.extract_features`.
    splits : pandas.Series, optional
        Split of each image (index: record id), e.g. the classifier's manifest's ``split``:
        a classifier fitted without a penalty can memorise its training images, so the
        summary then also gives the figures per split (``by_split``; the test split is the
        fair one).
    """
    from fusion_utils.features.extraction import extract_features

    hi, lo = paired_manifests(data_dir, full, reduced)
    feats = {}
    for name, df in (("full", hi), ("reduced", lo)):
        fs = extract_features(df, backbone=backbone, mode="bn", batch_size=batch_size,
                              device="cpu", use_cache=use_cache, progress=progress)
        order = pd.Index(np.asarray(fs.ids).astype(str)).get_indexer(df["record_id"])
        feats[name] = np.asarray(fs.X, dtype=np.float64)[order]
    a, b = feats["full"], feats["reduced"]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    per_image = pd.DataFrame({"record_id": hi["record_id"], "label": hi["label"],
                              "cosine": cosine})
    summary: dict[str, Any] = {
        "n_images": len(per_image), "backbone": backbone, "full": full, "reduced": reduced,
        "full_resolution": "x".join(map(str, hi.attrs.get("image_resolution") or ["?"])),
        "reduced_resolution": "x".join(map(str, lo.attrs.get("image_resolution") or ["?"])),
        "cosine_mean": float(cosine.mean()), "cosine_median": float(np.median(cosine)),
        "cosine_min": float(cosine.min()),
    }
    if classifier is not None:
        if isinstance(classifier, str | os.PathLike):
            from fusion_utils.fusion.classifier_io import load_classifier

            classifier = load_classifier(Path(classifier))
        per_image["pred_full"] = predict_with_weights(classifier, a)
        per_image["pred_reduced"] = predict_with_weights(classifier, b)
        per_image["agree"] = per_image["pred_full"] == per_image["pred_reduced"]
        summary.update(
            agreement=float(per_image["agree"].mean()),
            accuracy_full=float((per_image["pred_full"] == per_image["label"]).mean()),
            accuracy_reduced=float((per_image["pred_reduced"] == per_image["label"]).mean()))
    if splits is not None:
        per_image["split"] = splits.reindex(per_image["record_id"].astype(str)).to_numpy()
        summary["by_split"] = summary_by_split(per_image)
    return ResolutionComparison(per_image, summary)


def summary_by_split(per_image: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Images, mean cosine and (with predictions) agreement and accuracies per ``split``."""
    out: dict[str, dict[str, Any]] = {}
    for split, df in per_image.dropna(subset=["split"]).groupby("split", sort=True):
        row: dict[str, Any] = {"n_images": len(df), "cosine_mean": float(df["cosine"].mean())}
        if "agree" in df:
            row.update(agreement=float(df["agree"].mean()),
                       accuracy_full=float((df["pred_full"] == df["label"]).mean()),
                       accuracy_reduced=float((df["pred_reduced"] == df["label"]).mean()))
        out[str(split)] = row
    return out
