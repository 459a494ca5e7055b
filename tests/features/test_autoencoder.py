"""Auto-encoder atop a frozen CNN: pooling round trip, tied initialisation, training, resumption,
the verified float16 map cache, and the comparison table."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from fusion_utils.errors import FeatureError
from fusion_utils.features import autoencoder as ae
from fusion_utils.features.autoencoder import AEConfig, ConvAutoEncoder, FeatureMapCache

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _maps(n: int = 24, c: int = 16, seed: int = 0) -> np.ndarray:
    """Structured non-negative maps (low rank + noise), like rectified activations."""
    rng = np.random.default_rng(seed)
    basis = rng.random((3, c, 7, 7))
    w = rng.random((n, 3))
    return (np.einsum("nk,kchw->nchw", w, basis) + 0.05 * rng.random((n, c, 7, 7))
            ).astype(np.float32)


@pytest.fixture
def cache(tmp_path) -> FeatureMapCache:
    return FeatureMapCache.from_array(tmp_path / "maps", [f"r{i}" for i in range(24)], _maps(),
                                      chunk_size=10)


def test_unpool_of_pool_keeps_each_maximum_at_its_place() -> None:
    net = ConvAutoEncoder(4, 2)
    x = torch.rand(2, 3, 7, 7) + 0.1  # positive, like the rectified encoder output it pools
    pooled, idx = net.pool(x)
    assert pooled.shape == (2, 3, 4, 4)  # ceil mode: 7 -> 4
    back = net.unpool(pooled, idx, output_size=x.shape[-2:])
    assert back.shape == x.shape
    kept = back != 0
    assert int(kept.sum()) == pooled.numel()  # one value per pooling window
    torch.testing.assert_close(back[kept], x[kept])  # at the position it came from
    torch.testing.assert_close(net.pool(back)[0], pooled)  # pooling again: the same maxima
    # by hand: the top-left window's maximum
    assert float(pooled[0, 0, 0, 0]) == float(x[0, 0, :2, :2].max())


def test_decoder_starts_as_the_encoders_transpose() -> None:
    net = ConvAutoEncoder(6, 4, kernel_size=3)
    assert torch.equal(net.decoder.weight, net.encoder.weight)
    assert torch.count_nonzero(net.decoder.bias) == 0
    # as linear maps (no bias) the decoder is the adjoint of the encoder: <Ex, y> = <x, D y>
    x, y = torch.randn(2, 6, 7, 7), torch.randn(2, 4, 7, 7)
    ex = torch.nn.functional.conv2d(x, net.encoder.weight, padding=1)
    dy = torch.nn.functional.conv_transpose2d(y, net.decoder.weight, padding=1)
    torch.testing.assert_close((ex * y).sum(), (x * dy).sum(), rtol=1e-4, atol=1e-3)
    # and they are separate parameters (tied initialisation, untied training)
    assert net.decoder.weight.data_ptr() != net.encoder.weight.data_ptr()


def test_reconstruction_loss_decreases(cache: FeatureMapCache) -> None:
    trained = ae.train_autoencoder(cache, np.arange(20), AEConfig(code_channels=8, epochs=6,
                                                                  batch_size=5))
    losses = [h["loss"] for h in trained.history]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    assert all(b < a for a, b in itertools.pairwise(losses))
    codes = ae.encode(trained, cache)
    assert codes.shape == (24, 8) and np.isfinite(codes).all()
    # F(X) is the mean of the pooled code
    x = torch.from_numpy((cache.chunk(0)[:2].astype(np.float32) - trained.mean[:, None, None])
                         / trained.std[:, None, None])
    with torch.no_grad():
        code = trained.model.encode(x)[0]
    np.testing.assert_allclose(codes[:2], code.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)


def test_standardisation_uses_training_rows_only(cache: FeatureMapCache) -> None:
    rows = np.arange(5, 15)
    mean, std = ae._channel_stats(cache, rows)
    ref = np.concatenate([np.asarray(m, np.float64) for _, m in cache.iter_chunks()])[rows]
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-4)


def test_resumed_training_equals_an_uninterrupted_run(cache: FeatureMapCache, tmp_path) -> None:
    cfg = AEConfig(code_channels=4, epochs=4, batch_size=6, seed=3)
    rows = np.arange(18)
    full = ae.train_autoencoder(cache, rows, cfg, checkpoint_dir=tmp_path / "full")
    first = ae.train_autoencoder(cache, rows, cfg, checkpoint_dir=tmp_path / "cut", stop_after=2)
    assert len(first.history) == 2
    resumed = ae.train_autoencoder(cache, rows, cfg, checkpoint_dir=tmp_path / "cut")
    assert resumed.resumed_from == 2
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for (k, a), (_, b) in zip(full.model.state_dict().items(),
                              resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # a different seed does not reuse the checkpoint
    other = ae.train_autoencoder(cache, rows, AEConfig(code_channels=4, epochs=4, batch_size=6,
                                                       seed=4), checkpoint_dir=tmp_path / "cut")
    assert other.resumed_from is None


def test_cache_stores_float16_and_rejects_a_changed_chunk(cache: FeatureMapCache) -> None:
    maps = _maps()
    chunk = cache.chunk(1)
    assert chunk.dtype == np.float16 and chunk.shape == (10, 16, 7, 7)
    np.testing.assert_allclose(np.asarray(chunk, np.float32), maps[10:20], rtol=1e-3, atol=1e-3)
    assert list(cache.chunk_rows(2)) == [20, 21, 22, 23]
    path = cache.entry / "chunk_00001.npy"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # one flipped byte in the data
    path.write_bytes(bytes(raw))
    fresh = FeatureMapCache(cache.entry)
    fresh.chunk(0)  # untouched chunks still read
    with pytest.raises(FeatureError, match="chunk_00001.npy.*SHA-256"):
        fresh.chunk(1)
    with pytest.raises(FeatureError):
        fresh.verify()


def test_build_maps_average_to_bn_features_and_recompute_damage(demo_cohort, tmp_path) -> None:
    from fusion_utils.data.manifest import build_manifest
    from fusion_utils.features.backbones import get_backbone
    from fusion_utils.features.datasets import ManifestImageDataset

    manifest, _ = build_manifest("ham10000", demo_cohort / "ham10000")
    manifest = manifest.iloc[:3].copy()
    root = tmp_path / "feature_maps"
    cache = FeatureMapCache.build(manifest, cache_root=root, chunk_size=2)
    assert cache.shape == (1280, 7, 7) and cache.n == 3 and cache.n_chunks == 2
    assert list(cache.ids) == manifest["record_id"].astype(str).tolist()
    bb = get_backbone("efficientnet_lite0")
    ds = ManifestImageDataset.for_backbone(manifest, bb, classes=sorted(manifest["label"]))
    with torch.inference_mode():
        bn = bb.features(torch.stack([ds[i][0] for i in range(3)])).numpy()
    maps = np.concatenate([np.asarray(m, np.float32) for _, m in cache.iter_chunks()])
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), bn, atol=2e-3)
    # a damaged chunk is recomputed by the next build (with a warning), to the same values
    path = cache.entry / "chunk_00000.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="chunk_00000.npy"):
        again = FeatureMapCache.build(manifest, cache_root=root, chunk_size=2)
    np.testing.assert_array_equal(np.asarray(again.chunk(0)), np.asarray(maps[:2], np.float16))


def _toy_sets(n: int = 90, seed: int = 0):
    from fusion_utils.features.extraction import FeatureSet

    rng = np.random.default_rng(seed)
    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    labels = np.array([classes[i % 7] for i in range(n)])
    split = np.array(["train"] * 50 + ["val"] * 10 + ["test"] * 30)
    ids = np.array([f"r{i}" for i in range(n)])
    onehot = (labels[:, None] == np.array(classes)[None]).astype(float)

    def fs(signal: float, d: int) -> FeatureSet:
        X = rng.normal(size=(n, d))
        X[:, :7] += signal * onehot
        return FeatureSet(ids, labels, split, X, FeatureSet.names(d))

    manifest = pd.DataFrame({"record_id": ids, "dataset": "ham10000", "label": labels,
                             "path": "x", "group": ids, "split": split,
                             "meta.age": rng.integers(20, 80, n).astype(float),
                             "meta.sex": rng.choice(["male", "female"], n)})
    manifest.attrs["dataset"] = "ham10000"
    return {"bn": fs(0.2, 12), "ae": fs(1.0, 8), "ft": fs(3.0, 12)}, manifest


def test_compare_and_answer_on_separable_toy_features() -> None:
    sets, manifest = _toy_sets()
    metrics, info = ae.compare_features(sets, manifest, n_bootstrap=50)
    assert info["n_test"] == 30 and info["n_train"] == 50
    auroc = metrics[metrics["metric"] == "auroc"].set_index("model")
    assert {"bn", "ae", "ft", "bn+meta", "ae - bn", "ft - ae", "ft+meta - ae+meta"} <= set(
        auroc.index)
    # the signal strengths order the features
    assert auroc.loc["ft", "estimate"] > auroc.loc["ae", "estimate"] > auroc.loc["bn", "estimate"]
    np.testing.assert_allclose(auroc.loc["ae - bn", "estimate"],
                               auroc.loc["ae", "estimate"] - auroc.loc["bn", "estimate"])
    text = ae.answer(metrics)
    assert text.startswith("image only: AE is above BN")
    gap = auroc.loc["ft - bn", "estimate"]
    share = auroc.loc["ae - bn", "estimate"] / gap
    assert f"AE covers {share:.0%} of the BN-to-FT gap" in text
    table = ae.summary_table(metrics)
    assert "macro AUROC" in table.columns and "ae" in table.index
