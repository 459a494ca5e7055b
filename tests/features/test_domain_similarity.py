"""Domain distance from BatchNorm statistics: known answers, invariants, a network set on data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fusion_utils.features import domain_similarity as ds

# --------------------------------------------------------------------------- Frechet distance

def test_frechet_identical_statistics_is_zero() -> None:
    m, s = np.array([0.3, -2.0, 5.0]), np.array([1.0, 0.25, 9.0])
    assert np.allclose(ds.frechet_diagonal(m, s, m, s), 0.0)


def test_frechet_closed_form_for_two_1d_gaussians() -> None:
    # W2^2 between N(1, 2^2) and N(4, 3^2) = (1-4)^2 + (2-3)^2 = 10
    assert ds.frechet_diagonal([1.0], [4.0], [4.0], [9.0])[0] == pytest.approx(10.0)
    # same as the textbook form m^2 + s1 + s2 - 2 sqrt(s1 s2)
    assert ds.frechet_diagonal([0.0], [4.0], [0.0], [1.0])[0] == pytest.approx(4 + 1 - 2 * 2)


def test_frechet_symmetric_and_non_negative() -> None:
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=50), rng.normal(size=50)
    s1, s2 = rng.uniform(0, 3, 50), rng.uniform(0, 3, 50)
    d12, d21 = ds.frechet_diagonal(m1, s1, m2, s2), ds.frechet_diagonal(m2, s2, m1, s1)
    assert np.allclose(d12, d21)
    assert (d12 >= 0).all() and d12.sum() > 0


def test_frechet_rejects_negative_variance_and_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ds.frechet_diagonal([0.0], [-1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="shapes differ"):
        ds.frechet_diagonal([0.0, 1.0], [1.0, 1.0], [0.0], [1.0])


# --------------------------------------------------------------------------- running moments

def test_running_moments_equal_numpy_over_concatenated_batches() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(1000.0, 0.01, size=(n, 3, 4, 5)) for n in (1, 7, 2, 16)]
    rm = ds.RunningMoments()
    for b in batches:
        rm.update(torch.from_numpy(b))
    allx = np.concatenate(batches).transpose(1, 0, 2, 3).reshape(3, -1)
    assert rm.count == allx.shape[1]
    assert np.allclose(rm.mean, allx.mean(axis=1), rtol=0, atol=1e-10)
    # large offset, tiny spread: a naive sum-of-squares would lose all digits here
    assert np.allclose(rm.var, allx.var(axis=1), rtol=1e-8)


def test_collector_statistics_equal_numpy_over_activations() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                        nn.BatchNorm2d(2)).eval()
    x = [torch.randn(n, 3, 6, 6) for n in (3, 5)]
    with ds.BatchNormStatsCollector(net) as col, torch.no_grad():
        for b in x:
            net(b)
    with torch.no_grad():
        act = net[0](torch.cat(x)).double().numpy()  # input of the first BN
    flat = act.transpose(1, 0, 2, 3).reshape(4, -1)
    assert np.allclose(col.moments["1"].mean, flat.mean(axis=1))
    assert np.allclose(col.moments["1"].var, flat.var(axis=1))
    assert col.image_means["1"].shape == (8, 4)
    assert np.allclose(col.image_means["1"], act.mean(axis=(2, 3)))
    assert set(col.moments) == {"1", "4"}
    # hooks are removed on exit
    assert all(not m._forward_pre_hooks for m in net.modules())


def test_pooled_moments_of_a_resample_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    images = rng.normal(rng.normal(size=(10, 1, 1)) * 3, 1.0, size=(10, 3, 16))  # (n, C, HW)
    means, vars_ = images.mean(axis=2), images.var(axis=2)
    idx = rng.integers(0, 10, 10)
    w = np.bincount(idx, minlength=10)[None].astype(float)
    mean_b, var_b = ds._pooled(means, vars_, w)
    union = images[idx].transpose(1, 0, 2).reshape(3, -1)
    assert np.allclose(mean_b[0], union.mean(axis=1))
    assert np.allclose(var_b[0], union.var(axis=1))


# --------------------------------------------------------------------------- BN set from data

def _net_with_stats_from(x: torch.Tensor) -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6, momentum=None),
                        nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1),
                        nn.BatchNorm2d(4, momentum=None))
    net.train()
    with torch.no_grad():
        net(x)  # momentum=None: cumulative average; one batch -> the batch statistics
    return net.eval()


def _distance(net: nn.Module, x: torch.Tensor) -> float:
    with ds.BatchNormStatsCollector(net) as col, torch.no_grad():
        for b in x.split(16):
            net(b)
    target = {k: (m.mean, m.var) for k, m in col.moments.items()}
    return ds.domain_distance(ds.layer_distances(net, target))


def test_network_with_stats_from_x_is_near_zero_on_x_and_far_on_shifted_x() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=gen)
    net = _net_with_stats_from(x)
    same = _distance(net, x)
    shifted = _distance(net, x + 1.5)
    scaled = _distance(net, x * 3.0)
    assert same < 1e-3
    assert shifted > 0.1 and scaled > 0.1
    assert _distance(net, x + 3.0) > shifted  # farther shift, larger distance


def test_layer_distances_columns_and_normalisation() -> None:
    bn = nn.BatchNorm2d(2, eps=0.0)
    bn.running_mean.copy_(torch.tensor([0.0, 10.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    net = nn.Sequential(bn)
    table = ds.layer_distances(net, {"0": (np.array([2.0, 10.0]), np.array([4.0, 1.0]))})
    row = table.iloc[0]
    assert row["frechet"] == pytest.approx(4.0)  # (0-2)^2 in channel 0, nothing in channel 1
    assert row["frechet_norm"] == pytest.approx((4.0 / 4.0 + 0.0) / 2)
    assert row["mean_shift"] == pytest.approx((2.0 / 2.0 + 0.0) / 2)
    with pytest.raises(KeyError, match="no target statistics"):
        ds.layer_distances(net, {})


def test_collector_refuses_a_network_without_batchnorm() -> None:
    with pytest.raises(ValueError, match="no BatchNorm"):
        ds.BatchNormStatsCollector(nn.Sequential(nn.Conv2d(3, 3, 1)))


# --------------------------------------------------------------------------- end to end

@pytest.fixture
def tiny_images(tmp_path):
    """A manifest of 12 small RGB JPEG files: 6 dark, 6 bright."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        level = 40 if i < 6 else 200
        arr = np.clip(rng.normal(level, 20, size=(20, 20, 3)), 0, 255).astype(np.uint8)
        path = tmp_path / f"img{i}.jpg"
        Image.fromarray(arr).save(path)
        rows.append({"record_id": f"r{i}", "dataset": "ham10000",
                     "label": "a" if i % 2 else "b", "path": str(path), "split": "train"})
    return pd.DataFrame(rows)


def _tiny_backbone(stats_from: torch.Tensor):
    from fusion_utils.features.backbones import Backbone

    net = _net_with_stats_from(stats_from)
    features = nn.Sequential(net, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Backbone(name="tiny", features=features, head=nn.Linear(4, 2), feature_dim=4,
                    input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                    weights_tag="random")


def test_measure_domain_distance_end_to_end(tiny_images) -> None:
    from fusion_utils.features.datasets import ManifestImageDataset

    dark = tiny_images.iloc[:6]
    stub = _tiny_backbone(torch.randn(4, 3, 16, 16))
    inputs = ManifestImageDataset.for_backbone(dark, stub)
    bb = _tiny_backbone(torch.stack([inputs[i][0] for i in range(len(inputs))]))
    near = ds.measure_domain_distance(bb, dark, n_images=0, n_bootstrap=50, batch_size=4)
    far = ds.measure_domain_distance(bb, tiny_images.iloc[6:], n_images=0, n_bootstrap=50)
    assert near.n_images == 6 and near.per_layer.shape[0] == 2
    assert near.distance < 1e-3 < far.distance
    assert far.ci_low <= far.distance * 1.5 and far.ci_high >= far.ci_low
    assert far.se > 0 and np.isfinite(far.noise_floor)
    row = far.row()
    assert row["backbone"] == "tiny" and row["dataset"] == "ham10000" and row["n_layers"] == 2


# --------------------------------------------------------------------------- image statistics

def test_image_statistics_known_answers() -> None:
    gray = np.full((3, 32, 32), 0.5)
    s = ds._one_image_statistics(gray)
    assert s["entropy"] == 0.0 and s["std_r"] == 0.0 and s["colourfulness"] == pytest.approx(0)
    assert s["edge_density"] == 0.0 and s["high_freq_energy"] == 0.0
    assert s["sparsity"] == 1.0 and s["median"] == pytest.approx(0.5)
    checker = np.indices((32, 32)).sum(axis=0) % 2
    c = ds._one_image_statistics(np.repeat(checker[None].astype(float), 3, axis=0))
    assert c["high_freq_energy"] == pytest.approx(1.0)
    assert c["entropy"] == pytest.approx(1.0)  # two equally frequent levels: one bit
    assert c["sparsity"] == pytest.approx(0.5)
    red = np.zeros((3, 8, 8))
    red[0] = 1.0
    assert ds._one_image_statistics(red)["colourfulness"] > 0.3


def test_statistics_distance_zero_for_identical_and_ranks_the_shifted_statistic() -> None:
    rng = np.random.default_rng(0)
    a = pd.DataFrame(rng.normal(size=(100, 3)), columns=["x", "y", "z"])
    table, summary = ds.statistics_distance(a, a.copy(), columns=["x", "y", "z"], n_bootstrap=20)
    assert summary["distance"] == pytest.approx(0.0)
    b = a.copy()
    b["y"] += 2.0
    table, summary = ds.statistics_distance(a, b, columns=["x", "y", "z"], n_bootstrap=20)
    assert table.set_index("statistic")["contribution"].idxmax() == "y"
    assert summary["distance"] > 1.0 and summary["se"] > 0
    with pytest.raises(ValueError, match="lacks column"):
        ds.statistics_distance(a, b, columns=["w"])


# --------------------------------------------------------------------------- vs the grid

def test_exact_permutation_p_for_two_three_and_four_points() -> None:
    rho, p = ds.exact_permutation_p([1.0, 2.0], [5.0, 3.0])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1.0)
    rho, p = ds.exact_permutation_p([1.0, 2.0, 3.0], [0.1, 0.5, 0.9])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 6)
    rho, p = ds.exact_permutation_p([1, 2, 3, 4], [1, 2, 3, 4])
    assert p == pytest.approx(2 / 24)
    assert all(np.isnan(ds.exact_permutation_p([1.0], [2.0])))


def _results(rows):
    out = []
    for config, dataset, mode, model, auroc in rows:
        for metric, value in (("auroc", auroc), ("sensitivity", auroc / 2)):
            out.append({"config_id": config, "dataset": dataset, "backbone": "b0",
                        "mode": mode, "augment": False, "model": model, "metric": metric,
                        "class": "macro_mean", "value": value})
    return pd.DataFrame(out)


def test_transfer_differences_and_join() -> None:
    res = _results([("h-bn", "ham10000", "bn", "image", 0.8), ("h-bn", "ham10000", "bn",
                                                                "fused", 0.85),
                    ("h-ft", "ham10000", "ft", "image", 0.7), ("h-ft", "ham10000", "ft",
                                                               "fused", 0.72),
                    ("p-bn", "ptbxl", "bn", "image", 0.6), ("p-bn", "ptbxl", "bn", "fused",
                                                            0.58)])
    diff = ds.transfer_differences(res).set_index("dataset")
    assert diff.loc["ham10000", "ft_minus_bn"] == pytest.approx(-0.1)
    assert diff.loc["ham10000", "metadata_gain_bn"] == pytest.approx(0.05)
    assert diff.loc["ham10000", "metadata_gain_ft"] == pytest.approx(0.02)
    assert np.isnan(diff.loc["ptbxl", "ft_minus_bn"])  # no FT configuration for ptbxl
    assert diff.loc["ptbxl", "metadata_gain_bn"] == pytest.approx(-0.02)
    dist = pd.DataFrame({"dataset": ["ham10000", "ptbxl"], "backbone": ["b0", "b0"],
                         "distance": [0.4, 0.8], "se": [0.01, 0.01]})
    joined = ds.compare_with_transfer(dist, diff.reset_index())
    assert joined.set_index("dataset").loc["ptbxl", "bn"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="metric"):
        ds.transfer_differences(res, metric="f1")
