"""Metadata-only models (chapter 07): column sets per dataset and a fitted metadata-only classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.interpret.importance import _proba

__all__ = ['DEFAULT_COLUMN_SETS', 'LABEL_LEAK_COLUMNS', 'fit_metadata_only', 'parse_column_sets']

#: Prefix of the image-feature columns (``features.FeatureSet.feature_names``).

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
        raise ValueError("manifest needs train and test rows; "
                         f"has {manifest['split'].value_counts().to_dict()}")
    cls = list(classes) if classes is not None else list(manifest.attrs.get("classes")
                                                          or sorted(manifest["label"].unique()))
    model = make_pipeline(
        MetadataEncoder(encoding=encoding),
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

