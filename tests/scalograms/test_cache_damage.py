"""Scalogram cache: damaged entries are detected and rebuilt; bad leads follow the policy."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fusion_utils.errors import DataError
from fusion_utils.scalograms.cache import ScalogramCache
from tests.scalograms.test_cache import LEADS, SMALL, _write_record

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def records(tmp_path: Path) -> list[str]:
    return [_write_record(tmp_path / "cohort" / "ptbxl", i, i) for i in range(1, 4)]


def _write_bad_record(folder: Path, ecg_id: int, *, flat_all: bool = False) -> str:
    """A record whose lead V2 misses samples 300-399 (stored as -32768), or an all-zero one."""
    import wfdb

    t = np.arange(1000) / 100
    sig = 0.5 * np.sin(2 * np.pi * 1.2 * t)[:, None] * np.linspace(0.3, 1.4, 12)
    if flat_all:
        sig[:] = 0.0
    else:
        sig[300:400, 7] = np.nan
    sub = folder / "records100" / "00000"
    sub.mkdir(parents=True, exist_ok=True)
    name = f"{ecg_id:05d}_lr"
    wfdb.wrsamp(name, fs=100, units=["mV"] * 12, sig_name=LEADS, p_signal=sig, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(sub))
    return str(sub / name)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_png_is_rebuilt_by_build(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    cache.build(records, progress=False)
    good = cache.get(records[1])
    damaged = cache.path_for(records[1])
    _truncate(damaged)
    with pytest.warns(UserWarning, match=r"1 damaged cached montage\(s\) rebuilt: 00002_lr\.png"):
        summary = cache.build(records, progress=False)
    assert summary.rebuilt == [str(damaged)]
    assert (summary.cached, summary.computed) == (2, 1)
    np.testing.assert_array_equal(cache.get(records[1]), good)


def test_truncated_png_is_rebuilt_by_get(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    good = cache.get(records[0])
    path = cache.path_for(records[0])
    _truncate(path, 0.3)
    with pytest.warns(UserWarning, match=r"00001_lr\.png: damaged cached montage"):
        again = cache.get(records[0])
    np.testing.assert_array_equal(again, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(cache.get(records[0]), good)  # repaired on disk


def test_truncated_params_json_is_rewritten(tmp_path, records):
    cache = ScalogramCache(tmp_path / "c", SMALL)
    cache.build(records, progress=False)
    params = cache.folder / "params.json"
    _truncate(params)
    fresh = ScalogramCache(tmp_path / "c", SMALL)
    with pytest.warns(UserWarning, match=r"params\.json: damaged params\.json"):
        summary = fresh.build(records, progress=False)
    assert summary.cached == 3
    import json

    assert json.loads(params.read_text())["key"] == SMALL.key()


def test_missing_samples_dropped_by_default_with_a_warning(tmp_path, records):
    bad = _write_bad_record(tmp_path / "cohort" / "ptbxl", 9)
    cache = ScalogramCache(tmp_path / "c", SMALL)
    with pytest.warns(UserWarning, match=r"1 record\(s\) with missing samples or flat leads dropped"
                                         r".*00009_lr.*missing samples in V2"):
        summary = cache.build([*records, bad], progress=False)
    assert summary.dropped == [(bad, "missing samples in V2")]
    assert summary.computed == 3 and not cache.is_cached(bad)
    with pytest.raises(DataError, match=r"00009_lr: missing samples in V2: dropped"):
        cache.get(bad)


def test_interpolate_policy_keeps_the_record_apart(tmp_path):
    bad = _write_bad_record(tmp_path / "cohort" / "ptbxl", 9)
    cache = ScalogramCache(tmp_path / "c", SMALL, bad_leads="interpolate")
    with pytest.warns(UserWarning, match=r"1 record\(s\) .* kept after bad_leads='interpolate'"):
        summary = cache.build([bad], progress=False)
    assert summary.repaired == [(bad, "missing samples in V2")]
    stored = cache.path_for(bad).with_name("00009_lr.interpolated.png")
    assert stored.is_file() and not cache.path_for(bad).exists()
    image = cache.get(bad)
    assert image.shape == (48, 48, 3)
    # a cache with the default policy never serves the interpolated image
    with pytest.raises(DataError, match="dropped by bad_leads='drop'"):
        ScalogramCache(tmp_path / "c", SMALL).get(bad)
    with pytest.raises(DataError, match=r"00009_lr: missing samples in V2"):
        ScalogramCache(tmp_path / "c", SMALL, bad_leads="error").build([bad], progress=False)


def test_flat_record_never_makes_a_silent_one_colour_montage(tmp_path):
    flat = _write_bad_record(tmp_path / "cohort" / "ptbxl", 5, flat_all=True)
    with pytest.warns(UserWarning, match=r"dropped.*00005_lr.*flat: I, II, III"):
        summary = ScalogramCache(tmp_path / "c", SMALL).build([flat], progress=False)
    assert len(summary.dropped) == 1 and summary.computed == 0
    with pytest.warns(UserWarning, match=r"00005_lr: flat: I, II, III.*bad_leads='interpolate'"):
        ScalogramCache(tmp_path / "c", SMALL, bad_leads="interpolate").get(flat)


def test_bad_policy_name(tmp_path):
    with pytest.raises(ValueError, match="bad_leads='keep'"):
        ScalogramCache(tmp_path, SMALL, bad_leads="keep")
