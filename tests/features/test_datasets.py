"""Manifest dataset: decoding, bilinear resize, normalisation, split-aware seeded augmentation,
PTB-XL montages through the scalogram cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fusion_utils.features.augment import AugmentParams
from fusion_utils.features.datasets import (
    ManifestImageDataset,
    image_source_info,
    load_rgb,
    resize_image,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _manifest(tmp_path, n: int = 6) -> pd.DataFrame:
    rows = []
    for k in range(n):
        colour = (40 * k % 256, 100, 200)
        path = tmp_path / f"img{k}.png"
        Image.new("RGB", (60, 45), colour).save(path)
        rows.append({"record_id": f"r{k}", "dataset": "ham10000", "label": "ab"[k % 2],
                     "path": str(path), "group": f"g{k}", "split": ["train", "val", "test"][k % 3]})
    df = pd.DataFrame(rows)
    df.attrs["classes"] = ["a", "b"]
    return df


def test_items_are_resized_and_normalised(tmp_path) -> None:
    df = _manifest(tmp_path)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    ds = ManifestImageDataset(df, input_size=32, mean=mean, std=std)
    assert len(ds) == 6 and ds.classes == ("a", "b")
    x, y, i = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert (y, i) == (1, 3)
    expected = (np.array([120, 100, 200]) / 255 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    assert float(x.std(dim=(1, 2)).max()) < 1e-5  # a flat image stays flat


def test_resize_is_bilinear_and_covers_the_whole_image() -> None:
    img = torch.zeros(3, 450, 600, dtype=torch.uint8)
    img[:, :, 300:] = 255  # right half white
    out = resize_image(img, 224)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    # the whole width is kept (no crop): the edge stays in the middle, interpolated symmetrically
    assert float(out[:, :, :111].max()) == 0.0 and float(out[:, :, 113:].min()) == 1.0
    left, right = float(out[0, 100, 111]), float(out[0, 100, 112])
    assert 0 < left < 0.5 < right < 1 and left + right == pytest.approx(1.0, abs=1 / 255)


def test_real_ham_image_decodes(shared_ham) -> None:
    from fusion_utils.data.manifest import build_manifest

    df, _ = build_manifest("ham10000", shared_ham)
    img = load_rgb(df.iloc[0])
    assert img.shape == (3, 450, 600) and img.dtype == torch.uint8
    ds = ManifestImageDataset(df.iloc[:2], input_size=224)
    assert ds[0][0].shape == (3, 224, 224)


def test_augmentation_follows_apply_to_and_is_seeded(tmp_path) -> None:
    df = _manifest(tmp_path)
    plain = ManifestImageDataset(df, input_size=64)
    paper = ManifestImageDataset(df, input_size=64, augment=AugmentParams(), seed=3)
    train_only = ManifestImageDataset(df, input_size=64,
                                      augment=AugmentParams(apply_to="train"), seed=3)
    for i in range(len(df)):
        assert paper.is_augmented(i)
        assert train_only.is_augmented(i) == (df.split[i] == "train")
        changed = not torch.equal(paper[i][0], plain[i][0])
        assert changed  # shifts/rotations bring black borders into a flat image
        assert torch.equal(train_only[i][0], paper[i][0]) == (df.split[i] == "train")
    again = ManifestImageDataset(df, input_size=64, augment=AugmentParams(), seed=3)
    assert torch.equal(again[0][0], paper[0][0])
    again.set_epoch(1)
    assert not torch.equal(again[0][0], paper[0][0])


def test_ptbxl_rows_come_from_the_scalogram_cache(tmp_path) -> None:
    class FakeCache:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def get(self, path: str) -> np.ndarray:
            self.asked.append(path)
            return np.full((224, 224, 3), 255, dtype=np.uint8)

    df = pd.DataFrame({"record_id": ["1"], "dataset": ["ptbxl"], "label": ["NORM"],
                       "path": ["/x/records100/00000/00001_lr"], "split": ["test"]})
    cache = FakeCache()
    ds = ManifestImageDataset(df, input_size=16, mean=(0, 0, 0), std=(1, 1, 1),
                              scalogram_cache=cache)
    x, y, _ = ds[0]
    assert cache.asked == ["/x/records100/00000/00001_lr"]
    assert torch.allclose(x, torch.ones(3, 16, 16)) and y == 0
    info = image_source_info("ptbxl")
    assert info["source"] == "scalogram-montage" and len(info["montage_key"]) == 16
    assert image_source_info("ham10000") == {"source": "image-file"}


def test_real_ptbxl_record_gives_a_montage(shared_ptbxl, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))
    df = pd.DataFrame({"record_id": ["1"], "dataset": ["ptbxl"], "label": ["NORM"],
                       "path": [str(shared_ptbxl / "records100" / "00000" / "00001_lr")],
                       "split": ["train"]})
    ds = ManifestImageDataset(df, input_size=224)
    img = ds.image(0)
    assert img.shape == (3, 224, 224)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.05
    assert list(tmp_path.glob("scalograms/*/*/records100/00000/00001_lr.png"))


def test_boundary_errors(tmp_path) -> None:
    df = _manifest(tmp_path)
    with pytest.raises(ValueError, match="split"):
        ManifestImageDataset(df.drop(columns="split"))
    with pytest.raises(ValueError, match=r"label\(s\) \['b'\]"):
        ManifestImageDataset(df, classes=["a"])
    bad = df.copy()
    bad.loc[0, "path"] = str(tmp_path / "missing.jpg")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        ManifestImageDataset(bad)[0]


def _ecg(seed: int = 0) -> np.ndarray:
    """10 s of a 12-lead signal at 100 Hz: beats plus noise, different per lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100.0
    beats = np.exp(-((t[:, None] % 0.8 - 0.3) ** 2) / 2e-4) * rng.uniform(0.5, 2.0, 12)
    return beats + 0.05 * rng.standard_normal((1000, 12)) + np.sin(2 * np.pi * 0.3 * t)[:, None]


@pytest.mark.parametrize("size", [224, 227, 299])
def test_ptbxl_montage_is_drawn_at_the_network_size(tmp_path, monkeypatch, size) -> None:
    """A 299-pixel network gets a montage drawn at 299 pixels, not the 224 montage resized."""
    from fusion_utils.scalograms.cache import ScalogramCache
    from fusion_utils.scalograms.montage import MontageParams, record_to_montage

    signal = _ecg()
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ScalogramCache, "_load_signal", lambda self, path: signal)
    df = pd.DataFrame({"record_id": ["1"], "dataset": ["ptbxl"], "label": ["NORM"],
                       "path": [str(tmp_path / "records100" / "00000" / "00001_lr")],
                       "split": ["test"]})
    chapter02 = MontageParams(layout="6x2", colormap="viridis")  # image_size 224
    ds = ManifestImageDataset(df, input_size=size, mean=(0, 0, 0), std=(1, 1, 1),
                              montage_params=chapter02)
    assert ds.montage_params == MontageParams(layout="6x2", colormap="viridis", image_size=size)
    assert ds.scalogram_cache.params.image_size == size
    img = ds.image(0)
    assert img.shape == (3, size, size)
    drawn = record_to_montage(signal, ds.montage_params)
    np.testing.assert_array_equal((img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(),
                                  drawn)
    if size != 224:
        resized = resize_image(torch.from_numpy(record_to_montage(signal, chapter02))
                               .permute(2, 0, 1), size)
        assert float((resized - img).abs().mean()) > 0.01


def test_dataset_for_each_backbone_yields_its_input_size(tmp_path) -> None:
    from fusion_utils.features.backbones import backbone_spec
    from fusion_utils.features.datasets import montage_params_for

    expected = {"alexnet": 227, "inception_resnet_v2": 299, "resnet50": 224, "vgg16": 224}
    df = _manifest(tmp_path, n=3)
    for name, size in expected.items():
        spec = backbone_spec(name)
        assert spec.input_size == size
        ds = ManifestImageDataset(df, input_size=spec.input_size)
        assert ds[0][0].shape == (3, size, size)
        assert ds.montage_params.image_size == size
        assert montage_params_for(size).image_size == size
    assert (image_source_info("ptbxl", montage_params_for(299))["montage_key"]
            != image_source_info("ptbxl", montage_params_for(224))["montage_key"])


def test_feature_cache_key_names_the_montage_each_backbone_receives(tmp_path) -> None:
    from fusion_utils.features.extraction import feature_cache_key

    df = pd.DataFrame({"record_id": ["1"], "dataset": ["ptbxl"], "label": ["NORM"],
                       "path": ["/x/records100/00000/00001_lr"], "split": ["test"]})
    sizes = {name: feature_cache_key(df, name, None, "bn", None, 0, "float32")["images"]
             ["montage"]["image_size"] for name in ("alexnet", "inception_resnet_v2", "resnet50")}
    assert sizes == {"alexnet": 227, "inception_resnet_v2": 299, "resnet50": 224}
