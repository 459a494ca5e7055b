"""Feature extraction: FeatureSet files, the cache (hit, miss, invalidation, resumption),
augmentation per split, bf16 accuracy and fine-tuned features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fusion_utils.features import extraction as F
from fusion_utils.features.extraction import FeatureSet, extract_features

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(10):
        label = "ab"[k % 2]
        img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
        img[..., 0 if label == "a" else 2] = 230
        path = folder / f"ISIC_{k:07d}.png"
        Image.fromarray(img).save(path)
        rows.append({"record_id": f"ISIC_{k:07d}", "dataset": "ham10000", "label": label,
                     "path": str(path), "group": f"L{k}",
                     "split": ["train"] * 6 + ["val"] * 2 + ["test"] * 2})
    df = pd.DataFrame(rows)
    df["split"] = ["train"] * 6 + ["val", "val", "test", "test"]
    df.attrs["classes"] = ["a", "b"]
    return df


def _extract(manifest, root, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("num_workers", 0)
    return extract_features(manifest, cache_root=root, device="cpu", **kw)


def test_featureset_round_trip(tmp_path) -> None:
    fs = FeatureSet(ids=["a", "b"], labels=["x", "y"], split=["train", "test"],
                    X=np.arange(6, dtype=np.float64).reshape(2, 3),
                    feature_names=FeatureSet.names(3), info={"backbone": "b", "n": 2})
    assert fs.X.dtype == np.float32 and fs.feature_names.tolist() == ["img.0000", "img.0001",
                                                                       "img.0002"]
    back = FeatureSet.load(fs.save(tmp_path / "f.npz"))
    np.testing.assert_array_equal(back.X, fs.X)
    assert back.ids.tolist() == ["a", "b"] and back.info == {"backbone": "b", "n": 2}
    assert back.subset("test").ids.tolist() == ["b"]
    assert back.to_frame().columns[:4].tolist() == ["record_id", "label", "split", "img.0000"]
    with pytest.raises(ValueError, match="shape"):
        FeatureSet(["a"], ["x"], ["train"], np.zeros((2, 3)), FeatureSet.names(3))
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        FeatureSet.load(tmp_path / "none.npz")


def test_bn_features_cache_hit_miss_and_invalidation(manifest, tmp_path, monkeypatch) -> None:
    first = _extract(manifest, tmp_path)
    assert first.X.shape == (10, 1280) and first.info["cache_hit"] is False
    assert first.ids.tolist() == manifest.record_id.tolist()
    assert first.split.tolist() == manifest.split.tolist()
    assert first.info["weights"].startswith("imagenet:") and first.info["images_computed"] == 10
    assert np.isfinite(first.X).all() and (first.X >= 0).all()  # pooled ReLU6 activations

    # hit: nothing is built or computed
    def boom(*a, **k):
        raise AssertionError("the network was built on a cache hit")

    monkeypatch.setattr(F, "get_backbone", boom)
    hit = _extract(manifest, tmp_path)
    assert hit.info["cache_hit"] is True
    np.testing.assert_array_equal(hit.X, first.X)
    # the seed does not change bottleneck features without augmentation: still a hit
    assert _extract(manifest, tmp_path, seed=5).info["cache_hit"] is True
    monkeypatch.undo()

    # invalidation: a changed label, the augmentation, or the precision make new entries
    relabelled = manifest.copy()
    relabelled.loc[0, "label"] = "b"
    miss = _extract(relabelled, tmp_path)
    assert miss.info["cache_hit"] is False
    np.testing.assert_allclose(miss.X, first.X, rtol=1e-5, atol=1e-6)  # same images
    assert miss.info["cache_digest"] != first.info["cache_digest"]
    keys = {F.stable_hash(F.feature_cache_key(manifest, "efficientnet_lite0", "imagenet", "bn",
                                              aug, seed, prec))
            for aug, seed, prec in [(None, 0, "float32"), (F.AugmentParams(), 0, "float32"),
                                    (F.AugmentParams(), 1, "float32"), (None, 0, "bf16")]}
    assert len(keys) == 4
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 2 and all(p.startswith("efficientnet_lite0-bn-") for p in entries)
    assert not list(tmp_path.glob("*/chunk_*.npz"))  # chunks are joined and removed


def test_interrupted_extraction_resumes(manifest, tmp_path, monkeypatch) -> None:
    reference = _extract(manifest, tmp_path / "ref", chunk_size=4)
    calls = {"n": 0}
    real = F.run_features

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "run_features", flaky)
    with pytest.raises(KeyboardInterrupt):
        _extract(manifest, tmp_path / "run", chunk_size=4)
    kept = list((tmp_path / "run").glob("*/chunk_*.npz"))
    assert [p.name for p in kept] == ["chunk_00000.npz"]
    monkeypatch.undo()
    resumed = _extract(manifest, tmp_path / "run", chunk_size=4)
    assert resumed.info["images_computed"] == 6  # chunks 1 and 2 only
    np.testing.assert_allclose(resumed.X, reference.X, rtol=1e-5, atol=1e-6)


def test_augmentation_train_only_leaves_test_features_alone(manifest, tmp_path) -> None:
    plain = _extract(manifest, tmp_path, use_cache=False)
    train_only = _extract(manifest, tmp_path, augment="train", seed=1, use_cache=False)
    both = _extract(manifest, tmp_path, augment=True, seed=1, use_cache=False)
    is_train = manifest.split.to_numpy() == "train"
    np.testing.assert_allclose(train_only.X[~is_train], plain.X[~is_train], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(train_only.X[is_train], both.X[is_train], rtol=1e-5, atol=1e-6)
    assert not np.allclose(both.X[~is_train], plain.X[~is_train], atol=1e-3)
    assert both.info["augment"]["apply_to"] == "train+test"
    assert not list(tmp_path.iterdir())  # use_cache=False writes nothing


def test_bf16_features_match_float32(shared_ham, tmp_path) -> None:
    """bf16 arithmetic keeps efficientnet_lite0's features within cosine 0.999 of float32
    on real dermoscopy images."""
    from fusion_utils.data.manifest import build_manifest

    df, _ = build_manifest("ham10000", shared_ham)
    df = df.groupby("label").head(2).reset_index(drop=True)
    f32 = _extract(df, tmp_path, use_cache=False, batch_size=16)
    bf16 = _extract(df, tmp_path, use_cache=False, batch_size=16, precision="bf16")
    cos = (f32.X * bf16.X).sum(1) / np.linalg.norm(f32.X, axis=1) / np.linalg.norm(bf16.X, axis=1)
    assert cos.min() >= 0.999
    # oneDNN uses bf16 only where the CPU has native bf16 (AVX512-BF16 or AMX); elsewhere (an
    # AVX2-only AMD EPYC, for one) the setting is accepted and the arithmetic stays float32.
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        assert not np.array_equal(f32.X, bf16.X)  # bf16 arithmetic did happen
    assert torch.backends.mkldnn.conv.fp32_precision == "none"  # and was switched off again


def test_fine_tuned_features_are_cached(manifest, tmp_path) -> None:
    opts = {"epochs": 2, "batch_size": 4, "lr": 0.01}
    ft = _extract(manifest, tmp_path / "features", mode="ft", ft_options=opts)
    assert ft.X.shape == (10, 1280) and ft.info["mode"] == "ft"
    assert [row["epoch"] for row in ft.info["ft_history"]] == [1, 2]
    assert ft.info["ft_best_epoch"] in (1, 2) and ft.info["classes"] == ["a", "b"]
    ck = list((tmp_path / "checkpoints").glob("efficientnet_lite0-*/best.pt"))
    assert len(ck) == 1
    bn = _extract(manifest, tmp_path / "features")
    assert not np.allclose(ft.X, bn.X, atol=1e-3)  # fine-tuning changed the network
    again = _extract(manifest, tmp_path / "features", mode="ft", ft_options=opts)
    assert again.info["cache_hit"] is True
    np.testing.assert_array_equal(again.X, ft.X)


def test_argument_validation(manifest, tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"):
        _extract(manifest, tmp_path, mode="xx")
    with pytest.raises(ValueError, match="precision"):
        _extract(manifest, tmp_path, precision="fp8")
    with pytest.raises(ValueError, match="unknown backbone"):
        _extract(manifest, tmp_path, backbone="nope")
    mixed = manifest.copy()
    mixed.loc[0, "dataset"] = "ptbxl"
    with pytest.raises(ValueError, match="mixes datasets"):
        _extract(mixed, tmp_path)


def test_subsample_keeps_every_split_and_class(manifest) -> None:
    from fusion_utils.features.extraction import subsample_manifest

    small = subsample_manifest(manifest, 6, seed=0)
    assert len(small) == 6 and small.attrs == manifest.attrs
    cells = set(zip(manifest.split, manifest.label, strict=True))
    assert set(zip(small.split, small.label, strict=True)) == cells  # all 6 cells kept
    assert small.index.is_monotonic_increasing
    assert subsample_manifest(manifest, 0) is manifest
    assert subsample_manifest(manifest, 6, seed=0).record_id.tolist() == small.record_id.tolist()
