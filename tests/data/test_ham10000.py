"""HAM10000 loaders: both metadata layouts, image lookup, and clear errors on broken input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusion_utils.data import ham10000

FULL_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142,
               "df": 115}
IMAGE_COUNTS = {"nv": 156, "mel": 74, "bkl": 19, "bcc": 11, "akiec": 5, "df": 4, "vasc": 4}
WITH_DATASET = "HAM10000_metadata_with_dataset_column.csv"


@pytest.mark.shared_data
def test_seven_column_layout_known_answers(shared_ham: Path) -> None:
    df = ham10000.load_ham_table(shared_ham)
    assert len(df) == 10_015 and df.attrs["n_table"] == 10_015
    assert df["label"].value_counts().to_dict() == FULL_COUNTS
    assert df["lesion_id"].nunique() == 7470
    assert df["age"].isna().sum() == 57 and df["age"].dtype == float
    assert df.index.name == "image_id"
    assert set(ham10000.PATIENT_COLUMNS) <= set(df.columns)
    assert "dataset" not in df.columns


@pytest.mark.shared_data
def test_both_layouts_agree(shared_ham: Path) -> None:
    seven = ham10000.load_ham_table(shared_ham)
    eight = ham10000.load_ham_table(shared_ham, metadata_file=WITH_DATASET)
    raw = (shared_ham / WITH_DATASET).read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")  # the layout really is CRLF, no final EOL
    assert eight["dataset"].value_counts().to_dict() == {
        "vidir_molemax": 3954, "vidir_modern": 3363, "rosendahl": 2259, "vienna_dias": 439}
    pd.testing.assert_frame_equal(seven, eight.drop(columns="dataset"), check_like=False)


@pytest.mark.shared_data
def test_find_and_load_real_images(shared_ham: Path) -> None:
    images = ham10000.find_images(shared_ham)
    assert len(images) == 273
    table = ham10000.load_ham_table(shared_ham)
    assert table.loc[list(images), "label"].value_counts().to_dict() == IMAGE_COUNTS
    img = ham10000.load_image(images["ISIC_0024318"])
    assert img.mode == "RGB" and img.size == (600, 450)


def _jpeg(path: Path, colour: tuple[int, int, int] = (200, 120, 90)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), colour).save(path, quality=90)
    return path


def test_find_images_in_each_layout(tmp_path: Path) -> None:
    _jpeg(tmp_path / "parts" / "HAM10000_images_part_1" / "ISIC_0000001.jpg")
    _jpeg(tmp_path / "parts" / "HAM10000_images_part_2" / "ISIC_0000002.JPG")
    _jpeg(tmp_path / "flat" / "ISIC_0000003.jpg")
    _jpeg(tmp_path / "sub" / "images" / "ISIC_0000004.jpeg")
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    assert sorted(ham10000.find_images(tmp_path / "parts")) == ["ISIC_0000001", "ISIC_0000002"]
    assert list(ham10000.find_images(tmp_path / "flat")) == ["ISIC_0000003"]
    assert list(ham10000.find_images(tmp_path / "sub")) == ["ISIC_0000004"]
    with pytest.raises(FileNotFoundError, match="HAM10000 folder not found"):
        ham10000.find_images(tmp_path / "absent")


def test_load_image_converts_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (8, 4), 77).save(path)
    img = ham10000.load_image(path)
    assert img.mode == "RGB" and np.asarray(img)[0, 0].tolist() == [77, 77, 77]


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ISIC_0000009.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"ISIC_0000009\.jpg: unreadable image"):
        ham10000.load_image(bad)
    good = _jpeg(tmp_path / "ISIC_0000010.jpg")
    truncated = tmp_path / "ISIC_0000011.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"ISIC_0000011\.jpg: unreadable image"):
        ham10000.load_image(truncated)
    with pytest.raises(FileNotFoundError, match=r"image not found: .*nope\.jpg"):
        ham10000.load_image(tmp_path / "nope.jpg")


SEVEN = ("lesion_id,image_id,dx,dx_type,age,sex,localization\n"
         "HAM_1,ISIC_1,mel,histo,55.0,male,back\n"
         "HAM_1,ISIC_2,mel,histo,55.0,male,back\n"
         "HAM_2,ISIC_3,nv,follow_up,,female,trunk\n")


def test_synthetic_layouts_agree(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "HAM10000_metadata.csv").write_text(SEVEN)
    lines = SEVEN.replace("55.0", "55").splitlines()
    crlf = "\r\n".join([lines[0] + ",dataset"] + [f"{ln},rosendahl" for ln in lines[1:]])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "HAM10000_metadata.csv").write_bytes(crlf.encode())
    a = ham10000.load_ham_table(tmp_path / "a")
    b = ham10000.load_ham_table(tmp_path / "b")
    assert a.index.tolist() == ["ISIC_1", "ISIC_2", "ISIC_3"]
    assert a["label"].tolist() == ["mel", "mel", "nv"]
    pd.testing.assert_frame_equal(a, b.drop(columns="dataset"))
    assert b["dataset"].tolist() == ["rosendahl"] * 3


def test_bad_tables_are_named(tmp_path: Path) -> None:
    path = tmp_path / "HAM10000_metadata.csv"
    path.write_text(SEVEN.replace("localization", "site"))
    with pytest.raises(ValueError,
                       match=r"HAM10000_metadata\.csv: missing column\(s\) localization"):
        ham10000.load_ham_table(tmp_path)
    path.write_text(SEVEN.replace("nv,", "naevus,"))
    with pytest.raises(ValueError, match=r"dx has unknown or missing value\(s\) \['naevus'\]"):
        ham10000.load_ham_table(tmp_path)
    path.write_text(SEVEN.replace("55.0", "old"))
    with pytest.raises(ValueError, match="column age is not numeric"):
        ham10000.load_ham_table(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="HAM10000 metadata not found"):
        ham10000.load_ham_table(tmp_path)
