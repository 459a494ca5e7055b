"""Feature cache and image reading: damaged files give clear errors or are rebuilt; a replaced
image invalidates its cache entry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusion_utils.errors import FeatureError
from fusion_utils.features import extraction as F
from fusion_utils.features.datasets import ManifestImageDataset
from fusion_utils.features.extraction import FeatureSet

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _manifest(folder: Path, n: int = 4, ext: str = "png") -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    rows = []
    for k in range(n):
        path = folder / f"ISIC_{k:07d}.{ext}"
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path)
        rows.append({"record_id": f"ISIC_{k:07d}", "dataset": "ham10000", "label": "ab"[k % 2],
                     "path": str(path), "split": "train"})
    df = pd.DataFrame(rows)
    df.attrs["classes"] = ["a", "b"]
    return df


def _extract(manifest: pd.DataFrame, root: Path, **kw) -> FeatureSet:
    return F.extract_features(manifest, cache_root=root, device="cpu", progress=False,
                              num_workers=0, **kw)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_jpeg_through_the_dataset_names_file_and_record(tmp_path) -> None:
    manifest = _manifest(tmp_path / "img", n=2, ext="jpg")
    bad = Path(manifest.loc[1, "path"])
    _truncate(bad)
    ds = ManifestImageDataset(manifest, input_size=16)
    assert ds[0][0].shape == (3, 16, 16)
    with pytest.raises(FeatureError, match=r"ISIC_0000001\.jpg: unreadable image of record "
                                           r"'ISIC_0000001'"):
        ds[1]


def test_replaced_image_invalidates_its_entry(tmp_path) -> None:
    manifest = _manifest(tmp_path / "img")
    first = _extract(manifest, tmp_path / "c")
    assert _extract(manifest, tmp_path / "c").info["cache_hit"] is True
    target = Path(manifest.loc[2, "path"])
    Image.fromarray(np.full((32, 40, 3), 200, np.uint8)).save(target)  # same path, new picture
    os.utime(target, ns=(0, 1))  # even with an old modification time: the size differs
    again = _extract(manifest, tmp_path / "c")
    assert again.info["cache_hit"] is False and again.info["images_computed"] == 4
    np.testing.assert_allclose(again.X[[0, 1, 3]], first.X[[0, 1, 3]], rtol=1e-5, atol=1e-6)
    assert not np.allclose(again.X[2], first.X[2], atol=1e-3)
    assert F.input_fingerprint(manifest) == F.input_fingerprint(manifest.copy())


def test_truncated_features_npz_is_a_feature_error_and_rebuilt(tmp_path) -> None:
    manifest = _manifest(tmp_path / "img")
    first = _extract(manifest, tmp_path / "c")
    final = Path(first.info["cache_dir"]) / "features.npz"
    _truncate(final)
    with pytest.raises(FeatureError, match=r"features\.npz: damaged feature file"):
        FeatureSet.load(final)
    with pytest.warns(UserWarning, match=r"features\.npz: damaged feature file.*recomputing"):
        again = _extract(manifest, tmp_path / "c")
    assert again.info["cache_hit"] is False
    np.testing.assert_allclose(again.X, first.X, rtol=1e-5, atol=1e-6)
    assert FeatureSet.load(final).X.shape == first.X.shape  # written anew


def test_truncated_chunk_is_recomputed(tmp_path, monkeypatch) -> None:
    manifest = _manifest(tmp_path / "img")
    reference = _extract(manifest, tmp_path / "ref", chunk_size=2)
    calls = {"n": 0}
    real = F.run_features

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "run_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _extract(manifest, tmp_path / "run", chunk_size=2)
    monkeypatch.undo()
    (chunk,) = (tmp_path / "run").glob("*/chunk_00000.npz")
    _truncate(chunk)
    with pytest.warns(UserWarning, match=r"chunk_00000\.npz: damaged feature chunk"):
        resumed = _extract(manifest, tmp_path / "run", chunk_size=2)
    assert resumed.info["images_computed"] == 4
    np.testing.assert_allclose(resumed.X, reference.X, rtol=1e-5, atol=1e-6)
