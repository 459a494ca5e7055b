"""HAM10000: the metadata table (both published layouts), image lookup and loading.

Layouts read (Tschandl et al. 2018)::

    <data_dir>/HAM10000_metadata.csv      7 columns (Kaggle / ISIC 2018), LF line endings
                                          or 8 columns with ``dataset`` (Harvard Dataverse),
                                          CRLF line endings, ages as integers, no final newline
    <data_dir>/HAM10000_images_part_1/    the Dataverse archives, unpacked
    <data_dir>/HAM10000_images_part_2/
    <data_dir>/images/ or <data_dir>/     one flat folder of ``ISIC_XXXXXXX.jpg`` also works

The label is ``dx`` (7 classes). ``dx_type`` records how the diagnosis was confirmed
(histopathology, follow-up, consensus, confocal): it is a label leak, so it is not part of the
default metadata (:data:`PATIENT_COLUMNS`); the manifest lets you select it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fusion_utils.errors import DataError

__all__ = [
    "ACQUISITION_COLUMNS",
    "DIAGNOSES",
    "IMAGE_FOLDERS",
    "IMAGE_SUFFIXES",
    "LEAK_COLUMNS",
    "METADATA_FILE",
    "PATIENT_COLUMNS",
    "find_images",
    "find_metadata_file",
    "image_resolution",
    "load_ham_table",
    "load_image",
]

DIAGNOSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""The seven ``dx`` classes in the book's class order."""

PATIENT_COLUMNS: tuple[str, ...] = ("age", "sex", "localization")
"""Patient metadata (the paper's choice)."""

ACQUISITION_COLUMNS: tuple[str, ...] = ("dataset",)
"""Acquisition metadata: the source collection (8-column layout only)."""

LEAK_COLUMNS: tuple[str, ...] = ("dx_type",)
"""Columns that encode the diagnosis; never selected by a shortcut, only by name."""

METADATA_FILE = "HAM10000_metadata.csv"
IMAGE_FOLDERS: tuple[str, ...] = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images", ".")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
_REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx", "age", "sex", "localization")


def find_metadata_file(data_dir: str | os.PathLike[str]) -> Path:
    """The metadata CSV of a HAM10000 folder: ``HAM10000_metadata.csv``, else a single
    ``HAM10000_metadata*.csv``."""
    data_dir = Path(data_dir)
    path = data_dir / METADATA_FILE
    if path.is_file():
        return path
    candidates = sorted(data_dir.glob("HAM10000_metadata*.csv"))
    if len(candidates) == 1:
        return candidates[0]
    hint = (f"several candidates ({', '.join(c.name for c in candidates)}): pass metadata_file="
            if candidates else "pass the HAM10000 folder (e.g. ../shared/data/ham10000, or "
            "download it with fusion_utils.data.download.download_ham10000)")
    raise FileNotFoundError(f"HAM10000 metadata not found: {path}; {hint}")


def load_ham_table(
    data_dir: str | os.PathLike[str],
    *,
    metadata_file: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Read the HAM10000 metadata in either published layout.

    Parameters
    ----------
    data_dir : path-like
        The HAM10000 folder.
    metadata_file : path-like, optional
        The CSV to read, relative to ``data_dir`` or absolute (default:
        :func:`find_metadata_file`). Use it to read
        ``HAM10000_metadata_with_dataset_column.csv``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``image_id`` (str), with ``lesion_id``, ``dx``, ``dx_type``, ``age`` (float,
        NaN where missing), ``sex``, ``localization``, ``dataset`` when present, and ``label``
        (= ``dx``). ``attrs`` holds ``data_dir``, ``metadata_file`` and ``n_table``.
    """
    data_dir = Path(data_dir)
    if metadata_file is None:
        path = find_metadata_file(data_dir)
    else:
        path = Path(metadata_file)
        path = path if path.is_absolute() else data_dir / path
        if not path.is_file():
            raise FileNotFoundError(f"HAM10000 metadata not found: {path}")
    try:
        # pandas reads LF and CRLF files, with or without a final newline, the same way.
        df = pd.read_csv(path, dtype={"lesion_id": str, "image_id": str, "dx": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as HAM10000 metadata: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(df.columns)}. Is this HAM10000's metadata file?")
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].str.strip()
    bad_rows = df["dx"].isna() | ~df["dx"].isin(DIAGNOSES)
    if bad_rows.any():  # counts and example image ids per unknown class (issue 15)
        found = df.loc[bad_rows, ["dx", "image_id"]].fillna({"dx": "<missing>"})
        counts = found.groupby("dx")["image_id"].agg(["size", "first"])
        listed = ", ".join(f"{dx!r}: {n} (e.g. {first})" for dx, (n, first) in counts.iterrows())
        values = sorted(set(df.loc[bad_rows, "dx"].dropna())) or [None]
        raise DataError(f"{path}: dx has unknown or missing value(s) {values} in "
                        f"{int(bad_rows.sum())} row(s): {listed}; expected one of "
                        f"{', '.join(DIAGNOSES)}")
    if df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].head(5).tolist()
        raise DataError(f"{path}: image_id is not unique (e.g. {dup})")
    try:
        df["age"] = pd.to_numeric(df["age"], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column age is not numeric: {exc}") from exc
    df["label"] = df["dx"]
    df = df.set_index("image_id")
    df.attrs.update(data_dir=str(data_dir.resolve()), metadata_file=str(path.resolve()),
                    n_table=len(df))
    return df


def find_images(data_dir: str | os.PathLike[str],
                image_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Map ``image_id`` -> image file under a HAM10000 folder.

    Parameters
    ----------
    data_dir : path-like
        The HAM10000 folder.
    image_dir : path-like, optional
        Look only in this folder (relative to ``data_dir`` or absolute), e.g.
        ``"images_200x150"`` for the reduced-resolution copy in ``../shared/data/ham10000``.
        Default: ``HAM10000_images_part_1/``, ``HAM10000_images_part_2/``, ``images/`` and the
        folder itself (not deeper), the first folder in that order winning when an id appears
        twice.

    Only ``.jpg``/``.jpeg``/``.png`` files (any case) count; the file stem is the image id.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"HAM10000 folder not found: {data_dir}")
    if image_dir is not None and str(image_dir).strip():
        folders: tuple[Path, ...] = (data_dir / Path(image_dir),)  # an absolute path wins
        if not folders[0].is_dir():
            present = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
            raise FileNotFoundError(f"image_dir={str(image_dir)!r}: no folder {folders[0]}; "
                                    f"folders in {data_dir}: {', '.join(present) or 'none'}")
    else:
        folders = tuple(data_dir / sub for sub in IMAGE_FOLDERS)
    found: dict[str, Path] = {}
    for folder in folders:
        folder = folder.resolve()
        if not folder.is_dir():
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                found.setdefault(Path(entry.name).stem, Path(entry.path))
    return found


def image_resolution(paths: list[str | os.PathLike[str]], n: int = 5) -> tuple[int, int] | None:
    """``(width, height)`` shared by the first ``n`` images of ``paths`` (header only).

    Returns ``None`` when ``paths`` is empty or those images differ in size.
    """
    from PIL import Image

    sizes = set()
    for path in [p for p in paths if os.path.isfile(p)][:n]:
        with Image.open(path) as img:
            sizes.add(tuple(int(v) for v in img.size))
    return sizes.pop() if len(sizes) == 1 else None


def load_image(path: str | os.PathLike[str]):  # -> PIL.Image.Image (PIL imported lazily)
    """Open an image file fully and return it as an RGB ``PIL.Image.Image``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a readable image (truncated, corrupt or another format); the message
        names the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable image (corrupt, truncated or not an image): "
                         f"{exc}") from exc
