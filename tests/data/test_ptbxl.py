"""PTB-XL loaders: known answers on the real sample, and clear errors on broken input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.data import ptbxl

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# the 1,959 real 100 Hz records in ../shared/data/ptbxl are ecg_id 1-1999 less these 40 (its README)
ABSENT_IDS = {240, 255, 256, 257, 258, 259, 260, 261, 263, 266, 267, 269, 270, 271, 273, 274, 276,
              279, 282, 284, 296, 298, 299, 307, 313, 316, 333, 336, 347, 349, 383, 386, 414, 423,
              425, 429, 452, 476, 489, 500}
SAMPLE_IDS = [i for i in range(1, 2000) if i not in ABSENT_IDS]


@pytest.fixture(scope="module")
def full_table(shared_ptbxl: Path) -> pd.DataFrame:
    return ptbxl.load_ptbxl_table(shared_ptbxl, single_superclass=False)


# --- real data: known answers from ../shared/data/README.md ---------------------------------

@pytest.mark.shared_data
def test_full_table_superclass_counts(full_table: pd.DataFrame) -> None:
    assert len(full_table) == 21_837
    assert full_table.attrs["n_table"] == 21_837
    with_class = {c: int(full_table["superclasses"].map(lambda s, c=c: c in s).sum())
                  for c in ptbxl.SUPERCLASSES}
    assert with_class == {"NORM": 9528, "MI": 5486, "STTC": 5250, "CD": 4907, "HYP": 2655}
    n_classes = full_table["superclasses"].map(len)
    assert (n_classes == 0).sum() == 407
    assert (n_classes >= 2).sum() == 5158
    assert full_table["label"].isna().sum() == 407 + 5158


@pytest.mark.shared_data
def test_single_superclass_counts(shared_ptbxl: Path) -> None:
    df = ptbxl.load_ptbxl_table(shared_ptbxl)
    assert len(df) == 16_272
    assert df["label"].value_counts().to_dict() == {
        "NORM": 9083, "MI": 2538, "STTC": 2406, "CD": 1709, "HYP": 536}
    assert df.index.name == "ecg_id" and df.index.dtype.kind == "i"
    assert isinstance(df.loc[1, "scp_codes"], dict)
    assert df.loc[1, "scp_codes"] == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert df.loc[1, "superclasses"] == ["NORM"]
    # the v1.0.1 release keeps real ages above 89
    assert df.attrs["n_age_over_89_coded"] == 0 and df["age"].max() == 95


@pytest.mark.shared_data
@pytest.mark.parametrize(("threshold", "expected"),
                         [(1, 16_335), (50, 16_012), (80, 15_690), (100, 14_142)])
def test_likelihood_threshold(shared_ptbxl: Path, threshold: float, expected: int) -> None:
    assert len(ptbxl.load_ptbxl_table(shared_ptbxl, likelihood_threshold=threshold)) == expected


@pytest.mark.shared_data
def test_counts_over_the_1959_records(full_table: pd.DataFrame, shared_ptbxl: Path) -> None:
    present = [i for i in full_table.index
               if ptbxl.record_path(shared_ptbxl, i, 100).with_suffix(".dat").is_file()]
    assert present == SAMPLE_IDS and len(present) == 1959
    sub = full_table.loc[present]
    each = {c: int(sub["superclasses"].map(lambda s, c=c: c in s).sum())
            for c in ptbxl.SUPERCLASSES}
    assert each == {"NORM": 1055, "MI": 353, "STTC": 442, "CD": 400, "HYP": 192}
    # README: 1,533 with exactly one superclass, 403 with two or more, 23 with none
    assert sub["label"].value_counts().to_dict() == {"NORM": 1011, "STTC": 212, "CD": 139,
                                                      "MI": 122, "HYP": 49}
    assert (sub["superclasses"].map(len) >= 2).sum() == 403
    assert (sub["superclasses"].map(len) == 0).sum() == 23
    assert sub["patient_id"].nunique() == 1824
    assert sorted(sub["strat_fold"].unique()) == list(range(1, 11))


@pytest.mark.shared_data
def test_load_signal_real_record(shared_ptbxl: Path, full_table: pd.DataFrame) -> None:
    base = shared_ptbxl / full_table.loc[1, "filename_lr"]
    x = ptbxl.load_signal(base)
    assert x.shape == (1000, 12) and x.dtype == np.float32
    # first samples of record 1 from its header's initial values (digital/1000 -> mV)
    np.testing.assert_allclose(x[0, :3], [-0.119, -0.055, 0.064], atol=1e-6)
    np.testing.assert_array_equal(x, ptbxl.load_signal(shared_ptbxl, ecg_id=1))
    np.testing.assert_array_equal(x, ptbxl.load_signal(str(base) + ".hea"))
    hr = ptbxl.load_signal(shared_ptbxl / full_table.loc[8, "filename_hr"], sampling_rate=500)
    assert hr.shape == (5000, 12)
    # the NumPy fast path for format 16 gives wfdb's own physical values
    import wfdb

    for path, rate in ((base, 100), (shared_ptbxl / full_table.loc[8, "filename_hr"], 500)):
        expected = wfdb.rdrecord(str(path)).p_signal.astype(np.float32)
        np.testing.assert_allclose(ptbxl.load_signal(path, rate), expected, atol=1e-6)


@pytest.mark.shared_data
def test_header_lead_names(shared_ptbxl: Path) -> None:
    import wfdb

    for ecg_id in (1, 238):
        header = wfdb.rdheader(str(ptbxl.record_path(shared_ptbxl, ecg_id)))
        assert tuple(header.sig_name) == ptbxl.LEADS
    assert ptbxl.LEADS == ("I", "II", "III", "AVR", "AVL", "AVF",
                           "V1", "V2", "V3", "V4", "V5", "V6")


def test_record_path_layout(tmp_path: Path) -> None:
    assert ptbxl.record_path(tmp_path, 1) == tmp_path / "records100/00000/00001_lr"
    assert ptbxl.record_path(tmp_path, 21837, 500) == tmp_path / "records500/21000/21837_hr"
    with pytest.raises(ValueError, match="100 or 500"):
        ptbxl.record_path(tmp_path, 1, 250)


# --- synthetic tables: both releases, bad input ----------------------------------------------

STATEMENTS = """,description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass
NORM,normal ECG,1.0,,,NORM,NORM
IMI,inferior myocardial infarction,1.0,,,MI,IMI
NDT,non-diagnostic T abnormalities,1.0,1.0,,STTC,STTC
LVH,left ventricular hypertrophy,1.0,,,HYP,LVH
CLBBB,complete left bundle branch block,1.0,,,CD,LBBB
SR,sinus rhythm,,,1.0,,
"""

DATABASE_HEADER = ("ecg_id,patient_id,age,sex,height,weight,nurse,site,device,recording_date,"
                   "scp_codes,strat_fold,filename_lr,filename_hr\n")


def _row(ecg_id: int, age: float, codes: str, fold: int = 1) -> str:
    return (f'{ecg_id},{100 + ecg_id}.0,{age},0,,70.0,1.0,0.0,CS-12   E,1990-01-01 10:00:00,'
            f'"{codes}",{fold},records100/00000/{ecg_id:05d}_lr,records500/00000/{ecg_id:05d}_hr\n')


def _write_tables(folder: Path, rows: list[str], statements: str = STATEMENTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scp_statements.csv").write_text(statements)
    (folder / "ptbxl_database.csv").write_text(DATABASE_HEADER + "".join(rows))
    return folder


def test_v103_age_code_300_becomes_90(tmp_path: Path) -> None:
    rows = [_row(1, 300.0, "{'NORM': 100.0, 'SR': 0.0}"),
            _row(2, 71.0, "{'IMI': 50.0, 'SR': 0.0}"),
            _row(3, 300.0, "{'IMI': 100.0, 'NDT': 100.0}"),
            _row(4, 45.0, "{'SR': 0.0}")]
    df = ptbxl.load_ptbxl_table(_write_tables(tmp_path, rows))
    assert df.index.tolist() == [1, 2]
    assert df["age"].tolist() == [ptbxl.AGE_OVER_89_VALUE, 71.0]
    assert df.attrs["n_age_over_89_coded"] == 2  # counted over the whole table
    everything = ptbxl.load_ptbxl_table(tmp_path, single_superclass=False)
    assert everything["superclasses"].tolist() == [["NORM"], ["MI"], ["MI", "STTC"], []]
    assert everything["label"].tolist()[2:] == [None, None]
    assert ptbxl.load_ptbxl_table(tmp_path, likelihood_threshold=80).index.tolist() == [1]


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    _write_tables(tmp_path, [_row(1, 50, "{'NORM': 100.0}")])
    db = tmp_path / "ptbxl_database.csv"
    db.write_text(db.read_text().replace("scp_codes", "codes"))
    with pytest.raises(ValueError, match=r"ptbxl_database\.csv: missing column\(s\) scp_codes"):
        ptbxl.load_ptbxl_table(tmp_path)
    _write_tables(tmp_path, [_row(1, 50, "{'NORM': 100.0}")],
                  statements=STATEMENTS.replace("diagnostic_class", "klass"))
    with pytest.raises(ValueError,
                       match=r"scp_statements\.csv: missing column\(s\) diagnostic_class"):
        ptbxl.load_ptbxl_table(tmp_path)


def test_bad_scp_codes_and_missing_files(tmp_path: Path) -> None:
    _write_tables(tmp_path, [_row(7, 50, "NORM 100")])
    with pytest.raises(ValueError, match=r"scp_codes of ecg_id 7 is 'NORM 100'"):
        ptbxl.load_ptbxl_table(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ptbxl_database\.csv"):
        ptbxl.load_ptbxl_table(tmp_path / "nowhere")


# --- signals: broken WFDB records written with wfdb.wrsamp ------------------------------------

def _write_record(folder: Path, name: str = "00001_lr", fs: int = 100, n: int = 1000,
                  n_sig: int = 12) -> Path:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(n) / fs
    sig = np.stack([np.sin(2 * np.pi * (1 + k) * t) * (0.5 + 0.1 * k) for k in range(n_sig)], 1)
    names = list(ptbxl.LEADS[:n_sig]) if n_sig <= 12 else [f"S{k}" for k in range(n_sig)]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * n_sig, sig_name=names, p_signal=sig, fmt=["16"] * n_sig,
                adc_gain=[1000.0] * n_sig, baseline=[0] * n_sig, write_dir=str(folder))
    return folder / name


def test_wrsamp_record_round_trip(tmp_path: Path) -> None:
    base = _write_record(tmp_path)
    x = ptbxl.load_signal(base)
    assert x.shape == (1000, 12) and x.dtype == np.float32
    t = np.arange(1000) / 100
    np.testing.assert_allclose(x[:, 2], np.sin(2 * np.pi * 3 * t) * 0.7, atol=1e-3)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"WFDB header not found: .*00009_lr\.hea"):
        ptbxl.load_signal(tmp_path / "00009_lr")
    base = _write_record(tmp_path)
    base.with_suffix(".dat").unlink()
    with pytest.raises(FileNotFoundError, match=r"data file not found: .*00001_lr\.dat"):
        ptbxl.load_signal(base)
    with pytest.raises(ValueError, match="is a folder"):
        ptbxl.load_signal(tmp_path)


def test_truncated_dat(tmp_path: Path) -> None:
    base = _write_record(tmp_path)
    dat = base.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:10_000])
    with pytest.raises(ptbxl.SignalFileError,
                       match=r"00001_lr\.dat: truncated or corrupt \.dat: "
                             r"10000 bytes.*needs 24000"):
        ptbxl.load_signal(base)


def test_header_data_mismatch(tmp_path: Path) -> None:
    base = _write_record(tmp_path)
    dat = base.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes() + b"\x00" * 2400)  # header says 1000 samples, data has 1100
    with pytest.raises(ptbxl.SignalFileError, match=r"00001_lr\.dat: header/data mismatch: 26400"):
        ptbxl.load_signal(base)
    six = _write_record(tmp_path / "six", n_sig=6)
    with pytest.raises(ptbxl.SignalFileError, match=r"\.hea: header/data mismatch: .* 6 signals"):
        ptbxl.load_signal(six)
    with pytest.raises(ptbxl.SignalFileError, match=r"header says 100 Hz but sampling_rate=500"):
        ptbxl.load_signal(_write_record(tmp_path / "fs"), sampling_rate=500)


def test_corrupt_dat_fails_checksum(tmp_path: Path) -> None:
    base = _write_record(tmp_path)
    dat = base.with_suffix(".dat")
    data = bytearray(dat.read_bytes())
    data[5000:5010] = b"\x7f" * 10  # same size, flipped bytes
    dat.write_bytes(bytes(data))
    with pytest.raises(ptbxl.SignalFileError,
                       match=r"00001_lr\.dat: corrupt data: lead .* checksum"):
        ptbxl.load_signal(base)
    assert ptbxl.load_signal(base, verify_checksum=False).shape == (1000, 12)


def test_unparseable_header(tmp_path: Path) -> None:
    base = _write_record(tmp_path)
    base.with_suffix(".hea").write_text("this is not a header\n")
    with pytest.raises(ptbxl.SignalFileError, match=r"00001_lr\.hea: cannot parse the WFDB header"):
        ptbxl.load_signal(base)


@pytest.mark.shared_data
def test_truncated_copy_of_a_real_record(shared_ptbxl: Path, tmp_path: Path) -> None:
    src = ptbxl.record_path(shared_ptbxl, 22)
    for ext in (".hea", ".dat"):
        shutil.copy(src.with_suffix(ext), tmp_path / (src.name + ext))
    dat = tmp_path / (src.name + ".dat")
    dat.write_bytes(dat.read_bytes()[:-1])
    with pytest.raises(ptbxl.SignalFileError, match=r"00022_lr\.dat: truncated.*23999 bytes"):
        ptbxl.load_signal(tmp_path / src.name)
