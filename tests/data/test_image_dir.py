"""The HAM10000 image folder parameter: reduced-resolution copy, partial folders, manifest attrs."""

from __future__ import annotations

import pytest

from fusion_utils.data import ham10000, manifest


@pytest.mark.shared_data
def test_reduced_resolution_folder_gives_every_image(shared_ham) -> None:
    df, report = manifest.build_manifest("ham10000", shared_ham, image_dir="images_200x150",
                                         split_scheme="group")
    assert len(df) == report.n_records == 10_015
    assert report.n_missing_files == 0
    assert report.class_counts == {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115,
                                   "mel": 1113, "nv": 6705, "vasc": 142}
    assert df.attrs["image_dir"] == "images_200x150"
    assert df.attrs["image_resolution"] == [200, 150]
    assert df["path"].str.contains("/images_200x150/").all()
    # lesion-aware: no lesion in two splits
    assert df.groupby("group")["split"].nunique().max() == 1
    assert "images_200x150" in str(report)


@pytest.mark.shared_data
def test_default_folders_find_the_273_originals(shared_ham) -> None:
    df, report = manifest.build_manifest("ham10000", shared_ham)
    assert len(df) == 273
    assert report.n_missing_files == 10_015 - 273
    assert df.attrs["image_dir"] == ""
    assert df.attrs["image_resolution"] == [600, 450]


@pytest.mark.shared_data
def test_saved_manifest_keeps_folder_and_resolution(shared_ham, tmp_path) -> None:
    df, _ = manifest.build_manifest("ham10000", shared_ham, image_dir="images")
    back = manifest.load_manifest(manifest.save_manifest(df, tmp_path / "m.parquet"))
    assert (back.attrs["image_dir"], back.attrs["image_resolution"]) == ("images", [600, 450])


def test_partial_image_folder_is_counted(tmp_path) -> None:
    """Only some images present: the rest are counted as missing, named in the report."""
    from PIL import Image

    data = tmp_path / "ham"
    (data / "small").mkdir(parents=True)
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for i, dx in enumerate(["nv", "mel", "bkl", "nv", "bcc", "nv"]):
        rows.append(f"HAM_{i:07d},ISIC_{i:07d},{dx},histo,{40 + i},male,back")
        if i % 2 == 0:
            Image.new("RGB", (20, 15), (i * 30, 0, 0)).save(data / "small" / f"ISIC_{i:07d}.jpg")
    (data / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    found = ham10000.find_images(data, "small")
    assert sorted(found) == ["ISIC_0000000", "ISIC_0000002", "ISIC_0000004"]
    assert ham10000.find_images(data) == {}  # the default folders do not include "small"
    df, report = manifest.build_manifest("ham10000", data, image_dir="small", fractions=(1, 0, 0))
    assert sorted(df["record_id"]) == sorted(found)
    assert report.n_missing_files == 3 and report.missing_examples == [
        "ISIC_0000001", "ISIC_0000003", "ISIC_0000005"]
    assert df.attrs["image_resolution"] == [20, 15]


def test_unknown_image_folder_names_the_choices(tmp_path) -> None:
    (tmp_path / "images_200x150").mkdir()
    with pytest.raises(FileNotFoundError, match="image_dir='imgs'.*images_200x150"):
        ham10000.find_images(tmp_path, "imgs")
