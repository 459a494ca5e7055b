"""Manifest: schema, skipped files, subsampling, splits, parquet round trip, bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.data import manifest, splits
from fusion_utils.data.ham10000 import DIAGNOSES
from fusion_utils.data.ptbxl import SUPERCLASSES

HAS_DEMO = importlib.util.find_spec("fusion_utils.data.demo") is not None


def _check_schema(df: pd.DataFrame, dataset: str) -> None:
    assert list(df.columns[:6]) == list(manifest.COLUMNS)
    assert all(c.startswith("meta.") for c in df.columns[6:])
    assert (df["dataset"] == dataset).all()
    assert df["record_id"].map(type).eq(str).all() and df["record_id"].is_unique
    assert set(df["split"]) <= set(splits.SPLITS)
    assert set(df["label"]) <= set(manifest.class_order(dataset))
    assert df["path"].map(lambda p: Path(p).is_absolute()).all()
    assert df.attrs["dataset"] == dataset
    assert df.attrs["classes"] == list(manifest.class_order(dataset))
    assert df.attrs["metadata_columns"] == manifest.metadata_columns(df)


@pytest.mark.shared_data
def test_ptbxl_manifest_on_real_sample(shared_ptbxl: Path) -> None:
    df, report = manifest.build_manifest("ptbxl", shared_ptbxl)
    _check_schema(df, "ptbxl")
    # 1,959 records have files; 1,533 of them have exactly one superclass (README)
    assert report.n_table == 21_837 and report.n_unlabelled == 21_837 - 16_272
    assert report.n_missing_files == 16_272 - 1533 and report.n_records == 1533
    assert report.class_counts == {"NORM": 1011, "MI": 122, "STTC": 212, "CD": 139, "HYP": 49}
    assert manifest.metadata_columns(df) == ["meta.age", "meta.sex", "meta.height", "meta.weight"]
    assert df.loc[df["record_id"] == "1", "path"].item() == str(
        (shared_ptbxl / "records100/00000/00001_lr").resolve())
    assert df.loc[df["record_id"] == "1", "group"].item() == "15709"
    assert df.loc[df["record_id"] == "1", "meta.age"].item() == 56.0
    assert sum(report.split_counts.values()) == 1533
    assert "skipped, file missing:    14739" in str(report)


@pytest.mark.shared_data
def test_ptbxl_metadata_only_and_strat_fold(shared_ptbxl: Path) -> None:
    df, report = manifest.build_manifest("ptbxl", shared_ptbxl, split_scheme="strat_fold",
                                         require_files=False, metadata_columns="all")
    assert report.n_missing_files == 0 and len(df) == 16_272
    assert manifest.metadata_columns(df) == [
        "meta.age", "meta.sex", "meta.height", "meta.weight",
        "meta.nurse", "meta.site", "meta.device", "meta.recording_date"]
    assert df["meta.recording_date"].iloc[0] == "1984-11-09 09:17:34"  # raw value
    assert report.split_counts["val"] + report.split_counts["test"] < 0.25 * len(df)


@pytest.mark.shared_data
def test_ham_manifest_on_real_sample(shared_ham: Path) -> None:
    df, report = manifest.build_manifest("ham10000", shared_ham, split_scheme="group", seed=1)
    _check_schema(df, "ham10000")
    # the 273 originals in images/ (README); images_200x150/ is not looked in by default
    assert report.n_records == 273 and report.n_missing_files == 10_015 - 273
    assert report.class_counts == {"akiec": 5, "bcc": 11, "bkl": 19, "df": 4, "mel": 74, "nv": 156,
                                   "vasc": 4}
    assert manifest.metadata_columns(df) == ["meta.age", "meta.sex", "meta.localization"]
    assert "meta.dx_type" not in df.columns  # label leak: off by default
    assert df.groupby("group")["split"].nunique().max() == 1
    assert all(Path(p).is_file() for p in df["path"])
    leaky, _ = manifest.build_manifest("ham10000", shared_ham, metadata_columns=["dx_type", "age"])
    assert manifest.metadata_columns(leaky) == ["meta.dx_type", "meta.age"]
    allcols, _ = manifest.build_manifest("ham10000", shared_ham, metadata_columns="all")
    assert "meta.dx_type" not in allcols.columns  # 'all' never includes the leak


@pytest.mark.shared_data
def test_max_records_is_stratified_and_seeded(shared_ptbxl: Path) -> None:
    a, report = manifest.build_manifest("ptbxl", shared_ptbxl, max_records=20, seed=3)
    b, _ = manifest.build_manifest("ptbxl", shared_ptbxl, max_records=20, seed=3)
    c, _ = manifest.build_manifest("ptbxl", shared_ptbxl, max_records=20, seed=4)
    assert len(a) == 20 and report.n_subsampled_out == 1533 - 20
    assert set(a["label"]) == set(SUPERCLASSES)  # every class kept
    pd.testing.assert_frame_equal(a, b)
    assert set(a["record_id"]) != set(c["record_id"])


@pytest.mark.shared_data
def test_parquet_round_trip(shared_ham: Path, tmp_path: Path) -> None:
    df, _ = manifest.build_manifest("ham10000", shared_ham, metadata_columns="all")
    path = manifest.save_manifest(df, tmp_path / "m" / "ham10000.parquet")
    back = manifest.load_manifest(path)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == {**df.attrs, "fractions": [0.7, 0.15, 0.15]}
    assert back.attrs["report"]["n_records"] == 273
    assert not list(path.parent.glob(".*tmp*"))  # atomic write leaves no temporary


def test_default_manifest_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))
    assert manifest.default_manifest_path("PTB-XL") == tmp_path / "manifests" / "ptbxl.parquet"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        manifest.default_manifest_path("mnist")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'ptb'"):
        manifest.build_manifest("ptb", tmp_path)
    with pytest.raises(ValueError, match="split_scheme='random'"):
        manifest.build_manifest("ptbxl", tmp_path, split_scheme="random")
    with pytest.raises(ValueError, match="only for PTB-XL"):
        manifest.build_manifest("ham10000", tmp_path, split_scheme="strat_fold")
    with pytest.raises(FileNotFoundError, match="ptbxl folder not found"):
        manifest.build_manifest("ptbxl", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"ptbxl_database\.csv"):
        manifest.build_manifest("ptbxl", tmp_path)


def test_resolve_metadata_columns() -> None:
    avail = ["age", "sex", "height", "weight", "nurse", "site", "device", "recording_date"]
    assert manifest.resolve_metadata_columns("ptbxl", None, avail) == avail[:4]
    assert manifest.resolve_metadata_columns("ptbxl", "all", avail) == avail
    assert (manifest.resolve_metadata_columns("ptbxl", "meta.age, device", avail)
            == ["age", "device"])
    assert manifest.resolve_metadata_columns("ptbxl", [], avail) == []
    assert manifest.resolve_metadata_columns("ptbxl", "none", avail) == []
    with pytest.raises(ValueError,
                       match=r"metadata column\(s\) bmi not in x\.csv; choose from age"):
        manifest.resolve_metadata_columns("ptbxl", ["bmi"], avail, "x.csv")


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found.*notebook 01"):
        manifest.load_manifest(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="junk.parquet: not a readable parquet manifest"):
        manifest.load_manifest(tmp_path / "junk.parquet")
    bad = pd.DataFrame({"record_id": ["1"], "label": ["NORM"]})
    with pytest.raises(ValueError, match=r"missing column\(s\) dataset, path, group, split"):
        manifest.save_manifest(bad, tmp_path / "bad.parquet")


def test_split_table() -> None:
    df = pd.DataFrame({"label": ["NORM", "NORM", "MI", "HYP"],
                       "split": ["train", "test", "train", "val"]})
    df.attrs["classes"] = list(SUPERCLASSES)
    table = manifest.split_table(df)
    assert table.index.tolist() == [*SUPERCLASSES, "total"]
    assert table.columns.tolist() == ["train", "val", "test", "total"]
    assert table.loc["NORM"].tolist() == [1, 0, 1, 2]
    assert table.loc["CD"].tolist() == [0, 0, 0, 0]
    assert table.loc["total", "total"] == 4


# --- the demo cohort is read with no special case -------------------------------------------

@pytest.mark.skipif(not HAS_DEMO,
                    reason="fusion_utils.data.demo (written by another helper) is absent")
def test_demo_cohort_loads(demo_cohort: Path) -> None:
    from fusion_utils.data.ham10000 import load_ham_table, load_image
    from fusion_utils.data.ptbxl import LEADS, load_ptbxl_table, load_signal

    table = load_ptbxl_table(demo_cohort / "ptbxl")
    assert len(table) == 60 and set(table["label"]) == set(SUPERCLASSES)
    df, report = manifest.build_manifest("ptbxl", demo_cohort / "ptbxl", split_scheme="strat_fold")
    _check_schema(df, "ptbxl")
    assert report.n_missing_files == 0 and report.n_records == 60
    x = load_signal(df["path"].iloc[0])
    assert x.shape == (1000, len(LEADS)) and np.isfinite(x).all()

    ham = load_ham_table(demo_cohort / "ham10000")
    assert len(ham) == 60 and set(ham["label"]) == set(DIAGNOSES)
    hdf, hreport = manifest.build_manifest("ham10000", demo_cohort / "ham10000",
                                           split_scheme="group")
    _check_schema(hdf, "ham10000")
    assert hreport.n_missing_files == 0 and hreport.n_records == 60
    assert load_image(hdf["path"].iloc[0]).mode == "RGB"


@pytest.mark.shared_data
def test_ham_eight_column_layout_offers_dataset(shared_ham: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ham"
    folder.mkdir()
    (folder / "HAM10000_metadata.csv").write_bytes(
        (shared_ham / "HAM10000_metadata_with_dataset_column.csv").read_bytes())
    (folder / "images").symlink_to(shared_ham / "images")
    df, report = manifest.build_manifest("ham10000", folder, metadata_columns="all")
    assert report.n_records == 273
    assert manifest.metadata_columns(df) == [
        "meta.age", "meta.sex", "meta.localization", "meta.dataset"]
    assert (df["dataset"] == "ham10000").all()  # the schema column is not the metadata column
    assert set(df["meta.dataset"]) <= {"vidir_molemax", "vidir_modern", "rosendahl", "vienna_dias"}


def test_manifest_for_folder_prefers_chapter_01s_manifest_of_the_same_folder(
        demo_cohort, tmp_path, monkeypatch):
    from fusion_utils.data.manifest import (
        build_manifest,
        default_manifest_path,
        manifest_for_folder,
        save_manifest,
    )

    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    folder = demo_cohort / "ptbxl"
    built, source = manifest_for_folder("ptbxl", folder)  # no manifest yet: built from the table
    assert source.startswith("the table in") and len(built) == 60
    small, _ = build_manifest("ptbxl", folder, max_records=20)
    save_manifest(small, default_manifest_path("ptbxl"))
    got, source = manifest_for_folder("ptbxl", folder)
    assert len(got) == 20 and source.startswith("manifest")
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(FileNotFoundError):  # the default describes another folder: build there
        manifest_for_folder("ptbxl", other)
    ham, _ = build_manifest("ham10000", demo_cohort / "ham10000")
    save_manifest(ham, tmp_path / "ham.parquet")
    with pytest.raises(ValueError, match="ham10000 manifest; expected ptbxl"):
        manifest_for_folder("ptbxl", folder, tmp_path / "ham.parquet")


def test_ptbxl_records_with_bad_leads_are_left_out_counted_and_named(demo_cohort: Path,
                                                                      tmp_path: Path) -> None:
    import shutil
    import warnings

    from fusion_utils.errors import DataError
    from tests.data.test_bad_input import write_record

    folder = shutil.copytree(demo_cohort / "ptbxl", tmp_path / "ptbxl")
    clean, clean_report = manifest.build_manifest("ptbxl", folder)
    assert clean_report.n_bad_leads == 0
    victim = clean["record_id"].iloc[0]
    base = Path(clean.loc[clean["record_id"] == victim, "path"].item())
    write_record(base.parent, base.name, missing={6: slice(100, 200)})  # V1 partly missing
    with pytest.warns(UserWarning, match=rf"1 PTB-XL record\(s\) left out .* {victim}: missing "
                                         r"samples in V1"):
        df, report = manifest.build_manifest("ptbxl", folder)
    assert report.n_bad_leads == 1 and report.bad_lead_examples == [f"{victim}: missing samples "
                                                                    "in V1"]
    assert victim not in set(df["record_id"]) and len(df) == len(clean) - 1
    assert "dropped, bad leads:       1" in str(report)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # interpolate keeps the record, silently here
        kept, _ = manifest.build_manifest("ptbxl", folder, bad_leads="interpolate")
    assert victim in set(kept["record_id"])
    with pytest.raises(DataError, match=rf"{base.name}.*missing samples in V1"):
        manifest.build_manifest("ptbxl", folder, bad_leads="error")
    with pytest.raises(ValueError, match="bad_leads='skip'"):
        manifest.build_manifest("ptbxl", folder, bad_leads="skip")
