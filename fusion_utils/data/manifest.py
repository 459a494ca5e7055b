"""The manifest: one table per cohort that every later stage reads.

:func:`build_manifest` turns a dataset folder (real PTB-XL / HAM10000 or the demo cohort, which
share one on-disk format) into a DataFrame with the columns fixed in ``ARCHITECTURE.md``:

``record_id`` (str), ``dataset``, ``label``, ``path`` (absolute), ``group``, ``split`` and
``meta.<name>`` metadata columns with raw values. ``df.attrs`` carries ``dataset``,
``data_dir``, ``sampling_rate``, ``classes``, ``split_scheme``, ``seed``, ``metadata_columns``
(the ``meta.`` column names), plus ``fractions``, ``max_records`` and ``report`` (the
:class:`ManifestReport` as a dict). :func:`save_manifest` / :func:`load_manifest` keep the attrs
in the parquet schema metadata.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.data import ham10000, ptbxl, splits
from fusion_utils.errors import DataError, describe
from fusion_utils.io import atomic_path
from fusion_utils.paths import cache_dir, check_dataset

__all__ = [
    "COLUMNS",
    "META_PREFIX",
    "SPLIT_SCHEMES",
    "ManifestReport",
    "build_manifest",
    "class_order",
    "default_manifest_path",
    "load_manifest",
    "manifest_for_folder",
    "metadata_columns",
    "resolve_metadata_columns",
    "save_manifest",
    "split_table",
    "validate_manifest",
]

COLUMNS: tuple[str, ...] = ("record_id", "dataset", "label", "path", "group", "split")
META_PREFIX = "meta."
SPLIT_SCHEMES: tuple[str, ...] = ("stratified", "strat_fold", "group")
_ATTRS_KEY = b"fusion_utils.data.manifest.attrs"


@dataclass
class ManifestReport:
    """What :func:`build_manifest` kept and dropped, step by step.

    Attributes
    ----------
    n_table : int
        Rows in the dataset's table.
    n_unlabelled : int
        Rows without a usable label (PTB-XL: zero or several superclasses).
    n_missing_files : int
        Labelled rows whose signal/image file is absent (skipped unless ``require_files=False``).
    missing_examples : list of str
        Up to five skipped record ids.
    n_bad_leads : int
        PTB-XL: records left out by ``bad_leads="drop"`` (missing samples or flat leads).
    bad_lead_examples : list of str
        Up to five of them, each ``"<ecg_id>: <what is wrong>"``.
    n_subsampled_out : int
        Rows dropped by ``max_records``.
    n_records : int
        Rows in the manifest.
    class_counts, split_counts : dict
        Final counts per class (class order) and per split.
    image_dir : str
        HAM10000: the image folder read, when one was named.
    """

    dataset: str
    data_dir: str
    n_table: int = 0
    n_unlabelled: int = 0
    n_missing_files: int = 0
    missing_examples: list[str] = field(default_factory=list)
    n_bad_leads: int = 0
    bad_lead_examples: list[str] = field(default_factory=list)
    n_subsampled_out: int = 0
    n_records: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    split_counts: dict[str, int] = field(default_factory=dict)
    image_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"{self.dataset} cohort from {self.data_dir}"
        + (f" (images from {self.image_dir})" if self.image_dir else ""),
            f"  rows in table:            {self.n_table}",
            f"  without a single label:   {self.n_unlabelled}",
            f"  skipped, file missing:    {self.n_missing_files}"
            + (f" (e.g. {', '.join(self.missing_examples)})" if self.missing_examples else ""),
            f"  dropped, bad leads:       {self.n_bad_leads}"
            + (f" (e.g. {'; '.join(self.bad_lead_examples)})" if self.bad_lead_examples else ""),
            f"  dropped by max_records:   {self.n_subsampled_out}",
            f"  records in the manifest:  {self.n_records}",
            "  classes: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()),
            "  splits:  " + ", ".join(f"{k} {v}" for k, v in self.split_counts.items()),
        ]
        return "\n".join(lines)


def class_order(dataset: str) -> tuple[str, ...]:
    """The fixed class order of a dataset (``ptbxl.SUPERCLASSES`` or ``ham10000.DIAGNOSES``)."""
    return ptbxl.SUPERCLASSES if check_dataset(dataset) == "ptbxl" else ham10000.DIAGNOSES


def _column_sets(dataset: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if dataset == "ptbxl":
        return ptbxl.PATIENT_COLUMNS, ptbxl.ACQUISITION_COLUMNS
    return ham10000.PATIENT_COLUMNS, ham10000.ACQUISITION_COLUMNS


def resolve_metadata_columns(
    dataset: str,
    metadata_columns: str | Sequence[str] | None,
    available: Sequence[str],
    source: str = "the table",
) -> list[str]:
    """Turn the ``metadata_columns`` argument into a list of table column names.

    ``None`` or ``"patient"``: the dataset's patient columns. ``"all"``: patient plus acquisition
    columns that the table has (HAM10000's ``dx_type`` is a label leak and is only taken when
    named). A comma-separated string or a list names columns (a ``meta.`` prefix is allowed).
    An empty list or ``"none"`` selects nothing.
    """
    dataset = check_dataset(dataset)
    patient, acquisition = _column_sets(dataset)
    if metadata_columns is None:
        metadata_columns = "patient"
    if isinstance(metadata_columns, str):
        key = metadata_columns.strip().lower()
        if key == "patient":
            return list(patient)
        if key == "all":
            return [c for c in (*patient, *acquisition) if c in available]
        if key in ("", "none"):
            return []
        metadata_columns = [c for c in metadata_columns.split(",") if c.strip()]
    names = [str(c).strip().removeprefix(META_PREFIX) for c in metadata_columns]
    missing = [c for c in names if c not in available]
    if missing:
        raise ValueError(
            f"metadata column(s) {', '.join(missing)} not in {source}; choose from "
            f"{', '.join(map(str, available))}, or the shortcuts 'patient' / 'all'")
    return list(dict.fromkeys(names))


def _ptbxl_rows(data_dir: Path, sampling_rate: int) -> tuple[pd.DataFrame, int]:
    if sampling_rate not in ptbxl.SAMPLING_RATES:
        raise ValueError(f"sampling_rate={sampling_rate!r}: PTB-XL has 100 or 500 Hz records")
    table = ptbxl.load_ptbxl_table(data_dir)
    column = "filename_lr" if sampling_rate == 100 else "filename_hr"
    base = data_dir.resolve()
    rows = pd.DataFrame({
        "record_id": table.index.astype(str),
        "label": table["label"].astype(str).to_numpy(),
        "path": [str(base / str(f)) for f in table[column]],
        "group": [_group_text(v) for v in table["patient_id"]],
    })
    rows["has_file"] = [os.path.isfile(p + ".hea") and os.path.isfile(p + ".dat")
                        for p in rows["path"]]
    return _with_table(rows, table), int(table.attrs["n_table"])


def _ham_rows(data_dir: Path, image_dir: str | None = None) -> tuple[pd.DataFrame, int]:
    table = ham10000.load_ham_table(data_dir)
    images = ham10000.find_images(data_dir, image_dir)
    rows = pd.DataFrame({
        "record_id": table.index.astype(str),
        "label": table["label"].astype(str).to_numpy(),
        "path": [str(images[i]) if i in images else str(data_dir.resolve() / "images" / f"{i}.jpg")
                 for i in table.index],
        "group": table["lesion_id"].astype(str).to_numpy(),
    })
    rows["has_file"] = [i in images for i in table.index]
    return _with_table(rows, table), int(table.attrs["n_table"])


_TABLE = "table."
_NOT_METADATA = ("label", "scp_codes", "superclasses")


def _with_table(rows: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Append the dataset table's columns to ``rows`` under a ``table.`` prefix."""
    extra = table.reset_index(drop=True).drop(columns=list(_NOT_METADATA), errors="ignore")
    return rows.join(extra.add_prefix(_TABLE))


def _group_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_manifest(
    dataset: str,
    data_dir: str | os.PathLike[str],
    *,
    sampling_rate: int = 100,
    split_scheme: str = "stratified",
    seed: int = 0,
    max_records: int | None = None,
    metadata_columns: str | Sequence[str] | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    require_files: bool = True,
    image_dir: str | os.PathLike[str] | None = None,
    bad_leads: str = "drop",
) -> tuple[pd.DataFrame, ManifestReport]:
    """Build a cohort's manifest: labels, file paths, groups, splits and metadata.

    Parameters
    ----------
    dataset : {"ptbxl", "ham10000"}
        Which dataset ``data_dir`` holds.
    data_dir : path-like
        The dataset folder in its published layout (real data or the demo cohort).
    sampling_rate : int
        PTB-XL: 100 (``filename_lr``) or 500 (``filename_hr``). Ignored for HAM10000.
    split_scheme : {"stratified", "strat_fold", "group"}
        ``stratified``: per-class ``fractions`` (the paper); ``strat_fold``: PTB-XL's folds 1-8 /
        9 / 10; ``group``: stratified with each patient (PTB-XL) or lesion (HAM10000) in one split.
    seed : int
        Seed of the split and of the ``max_records`` subsample.
    max_records : int, optional
        Keep this many records, drawn per class in proportion (every class kept when possible).
    metadata_columns : str or list of str, optional
        ``"patient"`` (default), ``"all"``, or column names; see :func:`resolve_metadata_columns`.
    fractions : (float, float, float)
        Train/val/test fractions for ``stratified`` and ``group``.
    require_files : bool
        Skip (and count) records whose signal/image file is missing. ``False`` keeps every
        labelled row, e.g. for a metadata-only analysis of the full real tables.
    image_dir : path-like, optional
        HAM10000: the image folder to read, relative to ``data_dir`` or absolute (e.g.
        ``"images_200x150"``, the reduced-resolution copy of all 10,015 images in
        ``../shared/data/ham10000``); default: the published folders (see
        :func:`fusion_utils.data.ham10000.find_images`). ``df.attrs`` records it as
        ``image_dir`` and the images' size as ``image_resolution`` ([width, height]).
        Ignored for PTB-XL.
    bad_leads : {"drop", "interpolate", "error"}
        PTB-XL, with ``require_files``: every signal is read once and a record with missing
        samples (WFDB's missing value) or a flat lead is left out and counted (``"drop"``, with a
        warning naming the records), kept for the scalogram stage to interpolate
        (``"interpolate"``; pass the same policy to ``ScalogramCache``), or refused
        (``"error"``, a :class:`~fusion_utils.errors.DataError` naming the first record). See
        :func:`fusion_utils.data.ptbxl.apply_bad_leads`. Ignored for HAM10000.

    Returns
    -------
    (pandas.DataFrame, ManifestReport)
        The manifest (schema in the module docstring) and what was kept and dropped.
    """
    dataset = check_dataset(dataset)
    if split_scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split_scheme={split_scheme!r}: choose one of {', '.join(SPLIT_SCHEMES)}")
    if split_scheme == "strat_fold" and dataset != "ptbxl":
        raise ValueError("split_scheme='strat_fold' exists only for PTB-XL; use 'stratified' or "
                         "'group' for HAM10000")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{dataset} folder not found: {data_dir}")
    if dataset == "ptbxl":
        rows, n_table = _ptbxl_rows(data_dir, sampling_rate)
        source = str(data_dir / ptbxl.DATABASE_FILE)
    else:
        rows, n_table = _ham_rows(data_dir, None if image_dir is None else str(image_dir))
        source = str(ham10000.find_metadata_file(data_dir))
    table_columns = [c.removeprefix(_TABLE) for c in rows.columns if c.startswith(_TABLE)]
    meta = resolve_metadata_columns(dataset, metadata_columns, table_columns, source)
    report = ManifestReport(dataset=dataset, data_dir=str(data_dir.resolve()), n_table=n_table,
                            n_unlabelled=n_table - len(rows),
                            image_dir=str(image_dir or "") if dataset == "ham10000" else "")
    if require_files:
        missing = rows.loc[~rows["has_file"], "record_id"]
        report.n_missing_files = len(missing)
        report.missing_examples = missing.head(5).tolist()
        rows = rows[rows["has_file"]]
    if dataset == "ptbxl" and require_files and len(rows):
        rows = _apply_bad_leads(rows, sampling_rate, bad_leads, report)
    if len(rows) == 0:
        raise ValueError(f"no {dataset} record in {data_dir} has its file "
                         f"({report.n_missing_files} skipped as missing); check data_dir")
    if max_records is not None:
        keep = splits.stratified_subsample(rows["label"].to_numpy(), int(max_records), seed)
        report.n_subsampled_out = len(rows) - len(keep)
        rows = rows.iloc[keep]
    rows = rows.reset_index(drop=True)
    labels = rows["label"].to_numpy()
    if split_scheme == "stratified":
        split = splits.stratified_split(labels, fractions, seed)
    elif split_scheme == "strat_fold":
        split = splits.strat_fold_split(rows[_TABLE + "strat_fold"].to_numpy())
    else:
        split = splits.group_stratified_split(labels, rows["group"].to_numpy(), fractions, seed)
    df = pd.DataFrame({
        "record_id": rows["record_id"].astype(str),
        "dataset": dataset,
        "label": rows["label"].astype(str),
        "path": rows["path"].astype(str),
        "group": rows["group"].astype(str),
        "split": pd.Series(split, dtype=str),
    })
    for name in meta:
        df[META_PREFIX + name] = rows[_TABLE + name].to_numpy()
    classes = class_order(dataset)
    report.n_records = len(df)
    counts = df["label"].value_counts()
    report.class_counts = {c: int(counts.get(c, 0)) for c in classes}
    split_counts = df["split"].value_counts()
    report.split_counts = {s: int(split_counts.get(s, 0)) for s in splits.SPLITS}
    df.attrs.update(
        dataset=dataset, data_dir=str(data_dir.resolve()),
        sampling_rate=int(sampling_rate) if dataset == "ptbxl" else None,
        classes=list(classes), split_scheme=split_scheme, seed=int(seed),
        metadata_columns=[META_PREFIX + m for m in meta],
        image_dir=(str(image_dir) if image_dir not in (None, "") else "")
        if dataset == "ham10000" else None,
        image_resolution=(list(ham10000.image_resolution(df["path"].tolist()) or []) or None)
        if dataset == "ham10000" else None,
        fractions=[float(f) for f in fractions], max_records=max_records,
        report=report.to_dict(),
    )
    return df, report


def _apply_bad_leads(rows: pd.DataFrame, sampling_rate: int, policy: str,
                     report: ManifestReport) -> pd.DataFrame:
    """Read each PTB-XL signal once and apply the ``bad_leads`` policy to the whole cohort."""
    if policy not in ptbxl.BAD_LEADS_POLICIES:
        raise ValueError(f"bad_leads={policy!r}: choose one of "
                         f"{', '.join(ptbxl.BAD_LEADS_POLICIES)}")
    if policy == "interpolate":
        return rows
    bad: list[tuple[str, str]] = []
    for record_id, path in zip(rows["record_id"], rows["path"], strict=True):
        signal = ptbxl.load_signal(path, sampling_rate)
        text = ptbxl.describe_lead_problems(ptbxl.lead_problems(signal), signal.shape[1])
        if text:
            if policy == "error":
                raise DataError(describe(path, text, "pass bad_leads='drop' or 'interpolate', "
                                                     "or repair the record"))
            bad.append((str(record_id), text))
    if not bad:
        return rows
    report.n_bad_leads = len(bad)
    report.bad_lead_examples = [f"{rid}: {text}" for rid, text in bad[:5]]
    warnings.warn(f"{len(bad)} PTB-XL record(s) left out for missing samples or flat leads "
                  f"(bad_leads='drop'), e.g. {'; '.join(report.bad_lead_examples)}",
                  stacklevel=3)
    return rows[~rows["record_id"].astype(str).isin({rid for rid, _ in bad})]


def metadata_columns(df: pd.DataFrame) -> list[str]:
    """The ``meta.`` columns of a manifest, in order (e.g. ``["meta.age", "meta.sex"]``)."""
    return [c for c in df.columns if str(c).startswith(META_PREFIX)]


def split_table(df: pd.DataFrame) -> pd.DataFrame:
    """Counts per class (rows, class order) x split (columns) with totals."""
    classes = df.attrs.get("classes") or sorted(df["label"].unique())
    table = pd.crosstab(pd.Categorical(df["label"], categories=classes),
                        pd.Categorical(df["split"], categories=list(splits.SPLITS)),
                        dropna=False, margins=True, margins_name="total")
    table.index.name, table.columns.name = "label", "split"
    return table


def validate_manifest(df: pd.DataFrame, source: str = "manifest") -> pd.DataFrame:
    """Check a manifest's columns and values; return it unchanged or raise ``ValueError``."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; a manifest has "
                         f"{', '.join(COLUMNS)} and meta.* columns (see ARCHITECTURE.md)")
    bad_split = sorted(set(df["split"]) - set(splits.SPLITS))
    if bad_split:
        raise ValueError(f"{source}: split has value(s) {bad_split}; expected train/val/test")
    bad_ds = sorted(set(df["dataset"]) - {"ptbxl", "ham10000"})
    if bad_ds:
        raise ValueError(f"{source}: dataset has value(s) {bad_ds}; expected ptbxl or ham10000")
    if df["record_id"].duplicated().any():
        raise ValueError(f"{source}: record_id is not unique")
    return df


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def save_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a manifest as parquet, atomically, with ``df.attrs`` in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    validate_manifest(df)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    attrs = json.dumps(_jsonable(dict(df.attrs)), sort_keys=True, default=str)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _ATTRS_KEY: attrs.encode("utf-8")})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def load_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest written by :func:`save_manifest`, ``attrs`` included."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"manifest not found: {path}. Write it with notebook 01 (papermill "
            "notebooks/01_data_preparation.py, or fusion_utils.notebook_runner.execute_notebook"
            "('01_data_preparation', ...)) or manifest.save_manifest(build_manifest(...)[0], path)")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise ValueError(f"{path}: not a readable parquet manifest: {exc}") from exc
    df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(_ATTRS_KEY)
    df.attrs = json.loads(raw.decode("utf-8")) if raw else {}
    return validate_manifest(df, str(path))


def default_manifest_path(dataset: str) -> Path:
    """``<cache>/manifests/<dataset>.parquet`` (see :func:`fusion_utils.paths.cache_dir`)."""
    return cache_dir("manifests") / f"{check_dataset(dataset)}.parquet"


def manifest_for_folder(dataset: str, folder: str | os.PathLike[str],
                        manifest_path: str | os.PathLike[str] = "") -> tuple[pd.DataFrame, str]:
    """The cohort of ``folder``: a given manifest, chapter 01's when it describes this folder, else
    one built from the folder's tables.

    Returns the manifest and a sentence naming where it came from. A manifest of another
    dataset raises ``ValueError``. Nothing is written.
    """
    dataset = check_dataset(dataset)
    default = default_manifest_path(dataset)
    if str(manifest_path).strip():
        df, source = load_manifest(manifest_path), f"manifest {manifest_path}"
    elif default.is_file() and Path(load_manifest(default).attrs.get("data_dir", "")) == Path(
            folder).resolve():
        df, source = load_manifest(default), f"manifest {default}"
    else:
        df, _ = build_manifest(dataset, folder)
        source = f"the table in {folder} (records whose signal or image files exist)"
    if df.attrs.get("dataset", dataset) != dataset:
        raise ValueError(f"{source} is a {df.attrs['dataset']} manifest; expected {dataset}")
    return df, source
