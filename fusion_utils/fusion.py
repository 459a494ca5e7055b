"""Fusion of image features and encoded metadata, the paper's Eq. (3): H = [F(X), G(M)].

:func:`align_metadata` puts the manifest's metadata rows in the order of a feature set (by
``record_id``); :func:`fuse` concatenates the image features with the encoded metadata and returns
the column names (``img.0000`` ... then the encoder's names such as ``age``,
``recording_date.year``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["align_metadata", "feature_matrix", "fuse", "metadata_frame"]


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


def fuse(features: Any, metadata: pd.DataFrame | None, encoder: Any) -> tuple[np.ndarray, np.ndarray]:
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
