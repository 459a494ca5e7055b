"""Tests of fusion_utils.data.demo: the written cohort's formats, determinism, the stamp, the CLI.

The parts have their own tests: test_demo_tables.py, test_demo_ecg.py, test_demo_lesions.py.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.data import demo


def _digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest), the stamp excluded."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != demo.STAMP_FILE}


def _real_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.readline().rstrip("\r\n").split(",")


def test_class_order_and_leads_are_the_loaders_own_objects() -> None:
    """One definition each: the demo reuses the dataset modules' tuples, it keeps no copy."""
    from fusion_utils.data import ham10000, ptbxl

    assert demo.PTBXL_CLASSES is ptbxl.SUPERCLASSES
    assert demo.HAM_CLASSES is ham10000.DIAGNOSES
    assert demo.LEADS is ptbxl.LEADS


def test_written_layout_and_counts(demo_cohort: Path) -> None:
    ptbxl, ham = demo_cohort / "ptbxl", demo_cohort / "ham10000"
    stamp = json.loads((demo_cohort / demo.STAMP_FILE).read_text())
    assert stamp["format_version"] == demo.FORMAT_VERSION and stamp["n_ptbxl"] == 60
    table = pd.read_csv(ptbxl / "ptbxl_database.csv", index_col="ecg_id")
    assert list(table.index) == list(range(1, 61))
    assert table["recording_date"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    assert table["recording_date"].is_monotonic_increasing
    codes = table["scp_codes"].map(ast.literal_eval)
    assert codes.map(lambda c: isinstance(c, dict)
                     and all(isinstance(v, float) for v in c.values())).all()
    assert table["sex"].isin([0, 1]).all() and table["strat_fold"].between(1, 10).all()
    assert table["filename_lr"].str.fullmatch(r"records100/00000/\d{5}_lr").all()
    assert table["filename_hr"].str.fullmatch(r"records500/00000/\d{5}_hr").all()
    for col, dtype in (("patient_id", "float64"), ("age", "float64"), ("sex", "int64"),
                       ("second_opinion", "bool"), ("strat_fold", "int64"), ("nurse", "float64")):
        assert str(table[col].dtype) == dtype, col
    assert not (ptbxl / "records500").exists()  # not written by default
    raw_first = (ptbxl / "ptbxl_database.csv").read_text(encoding="utf-8").splitlines()[1]
    # pandas float format, like the real file
    assert raw_first.startswith("1,") and ".0," in raw_first

    meta = pd.read_csv(ham / "HAM10000_metadata.csv")
    assert meta["dx"].value_counts().to_dict() == demo.class_counts(60, "ham10000")
    assert meta["lesion_id"].str.fullmatch(r"HAM_\d{7}").all()
    assert meta["image_id"].str.fullmatch(r"ISIC_\d{7}").all()
    part1 = sorted(p.stem for p in (ham / "HAM10000_images_part_1").glob("*.jpg"))
    part2 = sorted(p.stem for p in (ham / "HAM10000_images_part_2").glob("*.jpg"))
    assert sorted(part1 + part2) == sorted(meta["image_id"]) and len(part1) == 30
    assert max(part1) < min(part2)  # part 1 holds the first half of the ids, like the archive
    assert b"\r\n" not in (ham / "HAM10000_metadata.csv").read_bytes()


def test_wfdb_and_pil_read_the_files(demo_cohort: Path) -> None:
    wfdb = pytest.importorskip("wfdb")
    from PIL import Image

    table = pd.read_csv(demo_cohort / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    for ecg_id in table.index[:5]:
        signal, fields = wfdb.rdsamp(str(demo_cohort / "ptbxl" / table.at[ecg_id, "filename_lr"]))
        assert signal.shape == (1000, 12)
        assert fields["fs"] == 100 and fields["units"] == ["mV"] * 12
        assert fields["sig_name"] == list(demo.LEADS)
        assert 0.3 < np.ptp(signal[:, 1]) < 12  # lead II: a plausible amplitude in mV
    header = wfdb.rdheader(str(demo_cohort / "ptbxl" / table.at[1, "filename_lr"]))
    assert header.fmt == ["16"] * 12 and header.adc_gain == [1000.0] * 12
    assert (demo_cohort / "ptbxl" / "records100" / "00000" / "00001_lr.dat").stat().st_size == 24000
    for path in list((demo_cohort / "ham10000").rglob("*.jpg"))[:5]:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (600, 450)


def test_columns_match_the_real_tables(
    demo_cohort: Path, shared_ptbxl: Path, shared_ham: Path,
) -> None:
    assert _real_header(demo_cohort / "ptbxl" / "ptbxl_database.csv") == \
        _real_header(shared_ptbxl / "ptbxl_database.csv") == list(demo.PTBXL_COLUMNS)
    assert _real_header(demo_cohort / "ptbxl" / "scp_statements.csv") == \
        _real_header(shared_ptbxl / "scp_statements.csv")
    assert _real_header(demo_cohort / "ham10000" / "HAM10000_metadata.csv") == \
        _real_header(shared_ham / "HAM10000_metadata.csv") == list(demo.HAM_COLUMNS)
    # every statement row the demo writes is the real row, verbatim
    real = pd.read_csv(shared_ptbxl / "scp_statements.csv", index_col=0)
    ours = pd.read_csv(demo_cohort / "ptbxl" / "scp_statements.csv", index_col=0)
    pd.testing.assert_frame_equal(ours, real.loc[ours.index], check_dtype=False)
    # dtypes as pandas reads them match the real table's
    real_db = pd.read_csv(shared_ptbxl / "ptbxl_database.csv", index_col="ecg_id", nrows=2000)
    ours_db = pd.read_csv(demo_cohort / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    for col in ("patient_id", "age", "sex", "nurse", "site", "device", "validated_by",
                "second_opinion", "strat_fold", "filename_lr"):
        assert ours_db[col].dtype == real_db[col].dtype, col
    assert set(ours_db["device"]) <= set(pd.read_csv(shared_ptbxl / "ptbxl_database.csv",
                                                     usecols=["device"])["device"])
    real_ham = pd.read_csv(shared_ham / "HAM10000_metadata.csv")
    ours_ham = pd.read_csv(demo_cohort / "ham10000" / "HAM10000_metadata.csv")
    assert set(ours_ham["localization"]) <= set(real_ham["localization"])
    assert set(ours_ham["dx_type"]) <= set(real_ham["dx_type"])


def test_loaders_read_the_cohort_with_no_skips(demo_cohort: Path) -> None:
    manifest = pytest.importorskip("fusion_utils.data.manifest")
    for dataset, n in (("ptbxl", 60), ("ham10000", 60)):
        df, report = manifest.build_manifest(dataset, demo_cohort / dataset, split_scheme="group")
        assert len(df) == n, report
        counts = df["label"].value_counts().to_dict()
        assert counts == demo.class_counts(n, dataset)
        assert report.n_missing_files == 0 and report.n_unlabelled == 0
        assert df["path"].map(lambda p: Path(p).exists() or Path(p + ".hea").exists()).all()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    demo.write_demo_cohort(tmp_path / "a", n_ptbxl=6, n_ham=8, seed=3)
    demo.write_demo_cohort(tmp_path / "b", n_ptbxl=6, n_ham=8, seed=3)
    demo.write_demo_cohort(tmp_path / "c", n_ptbxl=6, n_ham=8, seed=4)
    a, b, c = (_digest_tree(tmp_path / k) for k in "abc")
    assert a == b and len(a) == 2 + 12 + 1 + 8  # 2 tables, 6 x (hea, dat), metadata, 8 images
    assert a["ptbxl/ptbxl_database.csv"] != c["ptbxl/ptbxl_database.csv"]
    assert a["ptbxl/records100/00000/00001_lr.dat"] != c["ptbxl/records100/00000/00001_lr.dat"]
    assert a["ham10000/HAM10000_metadata.csv"] != c["ham10000/HAM10000_metadata.csv"]


def test_workers_do_not_change_the_bytes(tmp_path: Path) -> None:
    demo.write_demo_cohort(tmp_path / "one", n_ptbxl=5, n_ham=7, seed=1, workers=1)
    demo.write_demo_cohort(tmp_path / "two", n_ptbxl=5, n_ham=7, seed=1, workers=2)
    assert _digest_tree(tmp_path / "one") == _digest_tree(tmp_path / "two")


def test_stamp_skips_and_changed_parameters_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    paths = demo.write_demo_cohort(out, n_ptbxl=5, n_ham=7, seed=0)
    assert paths == {"ptbxl": out / "ptbxl", "ham10000": out / "ham10000"}
    db = out / "ptbxl" / "ptbxl_database.csv"
    marker = out / "ptbxl" / "marker.txt"
    marker.write_text("left alone by a re-run with the same parameters")
    os.utime(db, (1_000_000_000, 1_000_000_000))
    demo.write_demo_cohort(out, n_ptbxl=5, n_ham=7, seed=0)
    assert marker.exists() and db.stat().st_mtime == 1_000_000_000
    demo.write_demo_cohort(out, n_ptbxl=6, n_ham=7, seed=0)  # changed: rebuilt from scratch
    assert not marker.exists()
    assert len(pd.read_csv(db)) == 6
    assert json.loads((out / demo.STAMP_FILE).read_text())["n_ptbxl"] == 6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left
    marker.write_text("x")
    demo.write_demo_cohort(out, n_ptbxl=6, n_ham=7, seed=0, force=True)
    assert not marker.exists()


def test_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "ptbxl").mkdir()
    (tmp_path / "ptbxl" / "ptbxl_database.csv").write_text("real data\n")
    with pytest.raises(FileExistsError, match="force"):
        demo.write_demo_cohort(tmp_path, n_ptbxl=5, n_ham=7)
    assert (tmp_path / "ptbxl" / "ptbxl_database.csv").read_text() == "real data\n"


@pytest.mark.parametrize("kwargs", [{"n_ptbxl": 4}, {"n_ham": 0}, {"seed": -1}, {"n_ptbxl": 5.5}])
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="n_ptbxl|n_ham|seed"):
        demo.write_demo_cohort(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_records500_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wfdb = pytest.importorskip("wfdb")
    assert demo.main([str(tmp_path), "--n-ptbxl", "5", "--n-ham", "7", "--records500"]) == 0
    assert "demo cohort ready" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    hi, f_hi = wfdb.rdsamp(str(tmp_path / "ptbxl" / table.at[1, "filename_hr"]))
    lo, _ = wfdb.rdsamp(str(tmp_path / "ptbxl" / table.at[1, "filename_lr"]))
    assert hi.shape == (5000, 12) and f_hi["fs"] == 500
    # the 100 Hz record is the 500 Hz one decimated (up to the independent white noise)
    assert np.corrcoef(hi[::5, 1], lo[:, 1])[0, 1] > 0.8
    with pytest.raises(SystemExit):
        demo.main([str(tmp_path / "x"), "--n-ham", "3"])
