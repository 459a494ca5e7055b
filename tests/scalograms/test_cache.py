"""Scalogram cache: layout, hit/miss, invalidation, atomic writes, resume, real records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fusion_utils.scalograms.cache import ScalogramCache, record_dataset_dir
from fusion_utils.scalograms.montage import MontageParams, record_to_montage

SMALL = MontageParams(image_size=48)
LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _write_record(folder: Path, ecg_id: int, seed: int) -> str:
    """A tiny PTB-XL-like WFDB record (100 Hz, 12 leads, format 16); returns its base path."""
    wfdb = pytest.importorskip("wfdb")
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100
    sig = 0.5 * np.sin(2 * np.pi * rng.uniform(0.8, 2.0) * t)[:, None] * rng.uniform(0.2, 1.5, 12)
    sig += 0.05 * rng.standard_normal((1000, 12))
    sub = folder / "records100" / f"{ecg_id // 1000 * 1000:05d}"
    sub.mkdir(parents=True, exist_ok=True)
    name = f"{ecg_id:05d}_lr"
    wfdb.wrsamp(name, fs=100, units=["mV"] * 12, sig_name=LEADS, p_signal=np.round(sig, 3),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(sub))
    return str(sub / name)


@pytest.fixture
def records(tmp_path: Path) -> list[str]:
    return [_write_record(tmp_path / "cohort" / "ptbxl", i, i) for i in range(1, 6)]


def _load(base: str) -> np.ndarray:
    from fusion_utils.data.ptbxl import load_signal

    return load_signal(base, 100)


def test_paths_mirror_ptbxl_layout(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    path = cache.path_for(records[0])
    rel = path.relative_to(tmp_path / "c")
    assert rel.parts[0] == SMALL.key()
    assert rel.parts[1].startswith("ptbxl-")
    assert rel.parts[2:] == ("records100", "00000", "00001_lr.png")
    assert cache.path_for(records[0] + ".hea") == path
    assert record_dataset_dir(records[0])[0] == (tmp_path / "cohort" / "ptbxl").absolute()
    # the same relative record in another dataset folder never shares the image
    other = str(tmp_path / "real" / "ptbxl" / "records100" / "00000" / "00001_lr")
    assert cache.path_for(other) != path
    assert ScalogramCache(tmp_path / "c", MontageParams(image_size=64)).path_for(records[0]) != path


def test_default_root_is_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    cache = ScalogramCache()
    assert cache.root == tmp_path / "cache" / "scalograms"
    assert cache.params == MontageParams()


def test_miss_then_hit(tmp_path, records, monkeypatch):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    assert not cache.is_cached(records[0])
    image = cache.get(records[0])
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, record_to_montage(_load(records[0]), SMALL))
    assert cache.is_cached(records[0]) and cache.path_for(records[0]).is_file()
    saved = json.loads((cache.folder / "params.json").read_text())
    assert saved["key"] == SMALL.key() and saved["params"]["image_size"] == 48

    def boom(_path):
        raise AssertionError("a cache hit must not read the signal")

    monkeypatch.setattr(cache, "_load_signal", boom)
    np.testing.assert_array_equal(cache.get(records[0]), image)


def test_newer_record_invalidates_its_image(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    cache.get(records[1])
    png = cache.path_for(records[1])
    made = Path(records[1] + ".dat").stat().st_mtime - 10  # the image predates the record
    os.utime(png, (made, made))
    assert not cache.is_cached(records[1])
    cache.get(records[1])
    assert cache.is_cached(records[1])


def test_changed_parameters_use_another_folder(tmp_path, records):
    a = ScalogramCache(tmp_path / "c", SMALL)
    b = ScalogramCache(tmp_path / "c", MontageParams(image_size=48, layout="6x2"))
    a.get(records[0])
    assert not b.is_cached(records[0])
    assert b.get(records[0]).shape == (48, 48, 3)
    assert a.folder != b.folder
    assert {p.name for p in (tmp_path / "c").iterdir()} == {SMALL.key(), b.params.key()}
    assert a.clear() == 1 and not a.folder.exists() and b.is_cached(records[0])


def test_foreign_params_file_is_refused(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    cache.folder.mkdir(parents=True)
    (cache.folder / "params.json").write_text(json.dumps({"key": "x", "params": {}}))
    with pytest.raises(RuntimeError, match="other parameters"):
        cache.get(records[0])


def test_failed_write_leaves_no_partial_file(tmp_path, records, monkeypatch):
    from PIL import Image

    cache = ScalogramCache(tmp_path / "c", SMALL)
    real_save = Image.Image.save

    def half_then_crash(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as fh:
            fh.truncate(20)
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        cache.get(records[2])
    folder = cache.path_for(records[2]).parent
    assert not cache.path_for(records[2]).exists()
    assert [p.name for p in folder.iterdir()] == []  # no temporary file left behind
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert cache.get(records[2]).shape == (48, 48, 3)


def test_build_resumes_after_an_interruption(tmp_path, records, monkeypatch):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    real_load = cache._load_signal

    def fail_on_fourth(path):
        if path == records[3]:
            raise KeyboardInterrupt
        return real_load(path)

    monkeypatch.setattr(cache, "_load_signal", fail_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        cache.build(records, progress=False, batch_size=2)
    done = [cache.is_cached(r) for r in records]
    assert done[:2] == [True, True] and not done[3]
    monkeypatch.setattr(cache, "_load_signal", real_load)
    summary = cache.build(records, progress=False, batch_size=2)
    assert summary.cached == sum(done) and summary.computed == len(records) - sum(done)
    assert all(cache.is_cached(r) for r in records)
    again = cache.build(records, progress=False)
    assert (again.computed, again.cached, again.n_records) == (0, 5, 5)


def test_build_matches_get_and_skips_bad_records(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    missing = str(tmp_path / "cohort" / "ptbxl" / "records100" / "00000" / "00099_lr")
    summary = cache.build([*records, missing], progress=True, batch_size=3, on_error="skip")
    assert (summary.computed, summary.cached, len(summary.failed)) == (5, 0, 1)
    assert summary.failed[0][0] == missing and "FileNotFoundError" in summary.failed[0][1]
    assert summary.to_dict()["n_failed"] == 1 and summary.records_per_s > 0
    assert "5 computed" in str(summary)
    for r in records:
        np.testing.assert_array_equal(cache.get(r), record_to_montage(_load(r), SMALL))
    with pytest.raises(FileNotFoundError):
        cache.build([missing], progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fs=250"):
        ScalogramCache(tmp_path, MontageParams(fs=250.0))
    with pytest.raises(TypeError, match="MontageParams"):
        ScalogramCache(tmp_path, {"image_size": 48})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        ScalogramCache(tmp_path, SMALL).build([], on_error="ignore")  # type: ignore[arg-type]


@pytest.mark.shared_data
def test_real_records(tmp_path, shared_ptbxl):
    bases = [str(shared_ptbxl / "records100" / "00000" / f"{i:05d}_lr") for i in (1, 2, 8, 22)]
    cache = ScalogramCache(tmp_path / "c")  # the paper's parameters, 224 px
    summary = cache.build(bases, progress=False)
    assert summary.computed == 4 and not summary.failed
    image = cache.get(bases[0])
    assert image.shape == (224, 224, 3)
    np.testing.assert_array_equal(image, record_to_montage(_load(bases[0])))
    assert cache.path_for(bases[0]).stat().st_size < 60_000  # palette PNG
    # a 500 Hz record with 100 Hz parameters is refused with the reason
    from fusion_utils.data.ptbxl import SignalFileError

    hr = str(shared_ptbxl / "records500" / "00000" / "00001_hr")
    with pytest.raises(SignalFileError, match="500"):
        cache.get(hr)
