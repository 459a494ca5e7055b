"""Damaged or unexpected PTB-XL / HAM10000 input: a clear project error or a counted warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusion_utils.data import ptbxl
from fusion_utils.errors import DataError
from tests.data.test_ptbxl import STATEMENTS, _row, _write_tables

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def write_record(folder: Path, name: str = "00001_lr", *, missing: dict[int, slice] | None = None,
                 flat: tuple[int, ...] = (), n: int = 1000) -> Path:
    """A 12-lead format-16 record; ``missing`` lead -> sample slice stored as WFDB's -32768."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(n) / 100
    sig = np.stack([np.sin(2 * np.pi * (1 + k) * t) * (0.5 + 0.1 * k) for k in range(12)], 1)
    for k in flat:
        sig[:, k] = 0.0
    for k, sl in (missing or {}).items():
        sig[sl, k] = np.nan  # wfdb writes NaN as the format's missing-sample value
    wfdb.wrsamp(name, fs=100, units=["mV"] * 12, sig_name=list(ptbxl.LEADS), p_signal=sig,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                write_dir=str(folder))
    return folder / name


# --- signals -----------------------------------------------------------------------------------

def test_missing_samples_become_nan_not_minus_32_mv(tmp_path: Path) -> None:
    base = write_record(tmp_path, missing={6: slice(100, 200)})
    raw = np.fromfile(base.with_suffix(".dat"), dtype="<i2").reshape(1000, 12)
    assert (raw[100:200, 6] == -32768).all()  # the file really holds WFDB's missing value
    x = ptbxl.load_signal(base)
    assert np.isnan(x[100:200, 6]).all()
    assert np.isfinite(x[:100, 6]).all() and np.isfinite(np.delete(x, 6, axis=1)).all()
    assert np.nanmin(x) > -2.0  # never -32.768 mV
    assert ptbxl.lead_problems(x) == {"missing": [6], "flat": []}


def test_flat_leads_are_found(tmp_path: Path) -> None:
    x = ptbxl.load_signal(write_record(tmp_path, flat=(0, 11)))
    assert ptbxl.lead_problems(x) == {"missing": [], "flat": [0, 11]}
    assert ptbxl.describe_lead_problems(ptbxl.lead_problems(x)) == "flat: I, V6"


def test_bad_leads_policies(tmp_path: Path) -> None:
    base = write_record(tmp_path, missing={6: slice(100, 200)})
    x = ptbxl.load_signal(base)
    dropped, why = ptbxl.apply_bad_leads(x, "drop", where=base)
    assert dropped is None and why == "missing samples in V1"
    filled, why = ptbxl.apply_bad_leads(x, "interpolate", where=base)
    assert why == "missing samples in V1" and np.isfinite(filled).all()
    # linear between the neighbours of the gap
    expect = np.interp(np.arange(100, 200), [99, 200], [x[99, 6], x[200, 6]])
    np.testing.assert_allclose(filled[100:200, 6], expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.delete(filled, 6, 1), np.delete(x, 6, 1))
    with pytest.raises(DataError, match=r"00001_lr: missing samples in V1"):
        ptbxl.apply_bad_leads(x, "error", where=base)
    with pytest.raises(ValueError, match="bad_leads='keep'"):
        ptbxl.apply_bad_leads(x, "keep")
    clean = ptbxl.load_signal(write_record(tmp_path / "ok"))
    same, why = ptbxl.apply_bad_leads(clean, "error")
    assert why == "" and same is clean


def test_whole_lead_missing_interpolates_to_flat(tmp_path: Path) -> None:
    x = ptbxl.load_signal(write_record(tmp_path, missing={3: slice(None)}))
    assert ptbxl.lead_problems(x) == {"missing": [3], "flat": [3]}
    filled, why = ptbxl.apply_bad_leads(x, "interpolate")
    assert (filled[:, 3] == 0).all() and "flat: AVR" in why


# --- tables ------------------------------------------------------------------------------------

def test_text_age_raises_naming_file_column_and_row(tmp_path: Path) -> None:
    rows = [_row(1, 50, "{'NORM': 100.0}"), _row(2, "fifty", "{'NORM': 100.0}"),  # type: ignore[arg-type]
            _row(3, "", "{'NORM': 100.0}")]  # type: ignore[arg-type]
    _write_tables(tmp_path, rows)
    with pytest.raises(DataError, match=r"ptbxl_database\.csv, column 'age': 1 value\(s\) are not "
                                        r"numbers \(ecg_id: value \{'2': 'fifty'\}"):
        ptbxl.load_ptbxl_table(tmp_path)
    _write_tables(tmp_path, [_row(1, 50, "{'NORM': 100.0}"), _row(3, "", "{'NORM': 100.0}")])  # type: ignore[arg-type]
    df = ptbxl.load_ptbxl_table(tmp_path)  # a blank age is simply unknown
    assert df["age"].iloc[0] == 50 and np.isnan(df["age"].iloc[1])


def test_table_without_age_column(tmp_path: Path) -> None:
    _write_tables(tmp_path, [_row(1, 50, "{'NORM': 100.0}")])
    db = tmp_path / "ptbxl_database.csv"
    text = db.read_text().splitlines()
    cells = [line.split(",") for line in text]
    db.write_text("\n".join(",".join(c[:2] + c[3:]) for c in cells) + "\n")
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: missing column\(s\) age"):
        ptbxl.load_ptbxl_table(tmp_path)


def test_unknown_scp_codes_are_counted_and_named(tmp_path: Path) -> None:
    rows = [_row(1, 50, "{'NORM': 100.0}"), _row(2, 60, "{'XYZ': 100.0}"),
            _row(3, 70, "{'IMI': 100.0, 'XYZ': 50.0, 'QQQ': 0.0}")]
    _write_tables(tmp_path, rows, STATEMENTS)
    with pytest.warns(UserWarning, match=r"2 record\(s\) carry 2 SCP code\(s\)"
                                         r".*XYZ \(2\), QQQ \(1\).*ecg_id \[2, 3\]"):
        df = ptbxl.load_ptbxl_table(tmp_path)
    assert df.index.tolist() == [1, 3]
    assert df.attrs["unknown_scp_codes"] == {"XYZ": 2, "QQQ": 1}


def test_unreadable_table_is_a_data_error(tmp_path: Path) -> None:
    _write_tables(tmp_path, [_row(1, 50, "{'NORM': 100.0}")])
    (tmp_path / "ptbxl_database.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(DataError, match=r"ptbxl_database\.csv"):
        ptbxl.load_ptbxl_table(tmp_path)


# --- downloads ---------------------------------------------------------------------------------

def _zip(path: Path) -> Path:
    import zipfile

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"top/file{k}.bin", rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return path


@pytest.mark.parametrize("keep", [0.3, 0.9])  # no central directory / a member cut short
def test_truncated_zip_names_the_archive_and_extracts_nothing(tmp_path: Path, keep: float) -> None:
    from fusion_utils.data import download as dl

    archive = _zip(tmp_path / "images.zip")
    assert dl.extract_zip(archive, tmp_path / "ok") == tmp_path / "ok"
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["file0.bin", "file1.bin",
                                                                   "file2.bin"]
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"images\.zip: truncated or damaged zip archive"):
        dl.extract_zip(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_corrupt_zip_member_fails_its_crc(tmp_path: Path) -> None:
    from fusion_utils.data import download as dl

    archive = _zip(tmp_path / "images.zip")
    data = bytearray(archive.read_bytes())
    data[200] ^= 0xFF  # inside the first member's compressed bytes
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"images\.zip: truncated or damaged"):
        dl.extract_zip(archive, tmp_path / "out")


# --- HAM10000 labels ---------------------------------------------------------------------------

def test_ham_unknown_classes_are_counted_with_examples(tmp_path: Path) -> None:
    from fusion_utils.data import ham10000

    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization",
            "HAM_1,ISIC_0000001,nv,histo,50,male,back",
            "HAM_2,ISIC_0000002,naevus,histo,40,male,back",
            "HAM_3,ISIC_0000003,naevus,histo,45,female,face",
            "HAM_4,ISIC_0000004,,histo,45,female,face"]
    (tmp_path / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"HAM10000_metadata\.csv: dx has unknown or missing "
                                        r"value\(s\) \['naevus'\] in 3 row\(s\): '<missing>': 1 "
                                        r"\(e\.g\. ISIC_0000004\), 'naevus': 2 "
                                        r"\(e\.g\. ISIC_0000002\)"):
        ham10000.load_ham_table(tmp_path)
