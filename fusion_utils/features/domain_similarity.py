"""How far is a target dataset from ImageNet? Distances read from a pretrained network's BatchNorm.

After van den Brandt et al. 2021 ("Cats, not CAT scans", arXiv 2107.05940), who asked whether a
source dataset's similarity to the target predicts transfer. Here the source is always ImageNet,
and it is measured **without ImageNet images**: every BatchNorm layer of an ImageNet network
stores the running mean and variance of its input over ImageNet training images
(``running_mean``, ``running_var``). The same per-channel statistics of a target dataset's
activations at that layer's input (forward pre-hooks, eval mode, so every earlier layer
normalises with the ImageNet statistics, exactly as the frozen "BN" feature extractor does) are
compared with them.

Distances (documented choices)
------------------------------
Per channel ``c`` of a layer, under a diagonal Gaussian model, the Frechet (2-Wasserstein)
distance between ImageNet (``m1``, ``s1``: mean, variance) and the target (``m2``, ``s2``) is
``d_c = (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)`` (:func:`frechet_diagonal`); a layer's raw
distance is ``sum_c d_c`` (:func:`layer_distances`, column ``frechet``). Raw distances depend
on each layer's arbitrary scale, so the headline is normalised: ``d_c / (s1 + eps)``, with the
layer's own ``eps``, which is the Frechet distance between the two distributions *after* the
layer's normalisation, i.e. in the units the network itself uses (0: the target looks like
ImageNet to this channel; 1: e.g. a mean shifted by one ImageNet standard deviation).
A layer's normalised distance is the mean over its channels (``frechet_norm``); the
**domain distance** of a network and dataset is the mean over its BatchNorm layers of the
per-layer normalised distance (:data:`AGGREGATION`).

Uncertainty: a fixed seeded subset of ``n_images`` images (default 256) is drawn
(:func:`fusion_utils.features.extraction.subsample_manifest`); per-image per-channel moments are
kept, so the images can be resampled with replacement without running the network again
(``n_bootstrap`` resamples): the bootstrap standard error and 95 % percentile interval of the
domain distance are reported. The distance is a squared distance of sample moments, so sampling
noise biases it upwards by about ``(1 + s2/s1 ...) / n``; at the sizes used this floor is far
below the distances measured (:func:`noise_floor` estimates it by splitting the subset in two).

Caveats: the running statistics were accumulated during training (train-mode batches, with the
training augmentation, momentum 0.01), so they describe augmented ImageNet crops, not clean
validation images; and ``running_var`` is the unbiased batch variance while the target side uses
the population variance (the difference is ``1/(n H W)``, negligible).

Image statistics
----------------
:func:`image_statistics` computes simple per-image statistics of the network input (RGB in
[0, 1], resized to ``size``): the "statistical meta-features" of the Cats paper's code
(``meta_features.py`` in github.com/vcheplygina/cats-scans: Shannon entropy, skewness, kurtosis,
median, standard deviation, mean and sparsity of the intensities; the image-size feature is
constant after resizing and left out), plus per-channel means and standard deviations,
colourfulness (Hasler & Suesstrunk 2003), edge density (share of pixels whose Sobel gradient
magnitude exceeds 0.1) and high-frequency energy (share of the spectral power above half the
Nyquist radius). :func:`statistics_distance` compares two datasets on them: each statistic is
standardised with the pooled standard deviation and the diagonal Frechet distance is summed
over statistics (the contribution of each is reported).

Command line (the real edition's committed table)::

    python -m fusion_utils.features.domain_similarity real [--n-images 256] [--backbones ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = [
    "AGGREGATION",
    "STATISTICS",
    "BatchNormStatsCollector",
    "DomainDistance",
    "RunningMoments",
    "batchnorm_layers",
    "bootstrap_distance",
    "compare_with_transfer",
    "domain_distance",
    "exact_permutation_p",
    "frechet_diagonal",
    "image_statistics",
    "layer_distances",
    "load_real",
    "measure_domain_distance",
    "noise_floor",
    "plot_distances",
    "plot_statistics",
    "real_output_dir",
    "run_real",
    "statistics_distance",
    "transfer_differences",
]

AGGREGATION = ("mean over BatchNorm layers of the per-layer mean over channels of "
               "d_c / (s_imagenet + eps), d_c the diagonal Frechet distance of channel c")
"""How per-channel distances become one number per network and dataset."""

_BN = nn.modules.batchnorm._BatchNorm


# --------------------------------------------------------------------------- moments

@dataclasses.dataclass
class RunningMoments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch.

    The merge is Chan, Golub & LeVeque's pairwise update (the parallel form of Welford's
    algorithm), in float64: merging ``(n_a, mean_a, M2_a)`` and ``(n_b, mean_b, M2_b)`` gives
    ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
    ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``. Hand-written because it must run inside a forward
    hook on tensors of any layout; no library offers that for torch activations.
    """

    count: float = 0.0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    def merge(self, count: float, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge the moments of another sample (``count`` values per channel)."""
        mean = np.asarray(mean, dtype=np.float64)
        m2 = np.asarray(m2, dtype=np.float64)
        if count <= 0:
            return
        if self.mean is None or self.count == 0:
            self.count, self.mean, self.m2 = float(count), mean.copy(), m2.copy()
            return
        if mean.shape != self.mean.shape:
            raise ValueError(f"cannot merge moments of {mean.shape[0]} channels into "
                             f"{self.mean.shape[0]}")
        n = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / n)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / n)
        self.count = n

    def update(self, x: torch.Tensor | np.ndarray) -> None:
        """Merge a batch ``(N, C, ...)``: statistics per channel (axis 1) over all other axes."""
        t = torch.as_tensor(x).detach().to(torch.float64)
        if t.ndim < 2:
            raise ValueError(f"expected a batch of shape (N, C, ...), got {tuple(t.shape)}")
        flat = t.transpose(0, 1).reshape(t.shape[1], -1)
        n = flat.shape[1]
        mean = flat.mean(dim=1)
        m2 = ((flat - mean[:, None]) ** 2).sum(dim=1)
        self.merge(float(n), mean.numpy(), m2.numpy())

    @property
    def var(self) -> np.ndarray:
        """Population (ddof=0) variance per channel."""
        if self.mean is None or self.count == 0:
            raise ValueError("no values merged yet")
        return self.m2 / self.count


def frechet_diagonal(mean1: Any, var1: Any, mean2: Any, var2: Any) -> np.ndarray:
    """Per-channel Frechet distance between Gaussians with diagonal covariance.

    ``(m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)``, i.e. ``(m1 - m2)^2 + (sqrt(s1) - sqrt(s2))^2``
    (the form computed, which cannot go negative through rounding); ``s`` are variances.
    Summed over channels it is the squared 2-Wasserstein distance of the two diagonal Gaussians.
    """
    m1, m2 = np.asarray(mean1, dtype=np.float64), np.asarray(mean2, dtype=np.float64)
    s1, s2 = np.asarray(var1, dtype=np.float64), np.asarray(var2, dtype=np.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or m1.shape != s1.shape:
        raise ValueError(f"shapes differ: means {m1.shape} and {m2.shape}, variances {s1.shape} "
                         f"and {s2.shape}")
    if (s1 < 0).any() or (s2 < 0).any():
        raise ValueError("variances must be non-negative")
    return (m1 - m2) ** 2 + (np.sqrt(s1) - np.sqrt(s2)) ** 2


# --------------------------------------------------------------------------- hooks

def batchnorm_layers(model: nn.Module) -> list[tuple[str, _BN]]:
    """``(name, module)`` of every BatchNorm layer of ``model`` that stores running statistics."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, _BN) and m.track_running_stats and m.running_mean is not None
            and m.running_var is not None]


class BatchNormStatsCollector:
    """Forward pre-hooks that record the per-channel moments of every BatchNorm layer's input.

    Use as a context manager around forward passes; ``moments[name]`` is a
    :class:`RunningMoments` over all images seen, and, with ``per_image=True``,
    ``image_means[name]`` / ``image_vars[name]`` are ``(n_images, C)`` float64 arrays of each
    image's spatial mean and variance (for the bootstrap).
    """

    def __init__(self, model: nn.Module, per_image: bool = True) -> None:
        self.layers = batchnorm_layers(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no BatchNorm layer with running "
                             "statistics: the domain distance needs them")
        self.per_image = per_image
        self.moments = {name: RunningMoments() for name, _ in self.layers}
        self._means: dict[str, list[np.ndarray]] = {name: [] for name, _ in self.layers}
        self._vars: dict[str, list[np.ndarray]] = {name: [] for name, _ in self.layers}
        self.spatial: dict[str, int] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach()
            n, c = x.shape[0], x.shape[1]
            flat = x.reshape(n, c, -1)
            hw = flat.shape[2]
            # Per-image moments in the activations' dtype (torch's two-pass var_mean: accurate
            # over one image's positions, and cheap), merged across images in float64.
            var_i, mean_i = torch.var_mean(flat, dim=2, unbiased=False)
            var_i, mean_i = var_i.to(torch.float64).cpu(), mean_i.to(torch.float64).cpu()
            self.spatial[name] = hw
            # Batch moments from per-image moments (within + between), then Chan's merge.
            bmean = mean_i.mean(dim=0)
            m2 = (var_i.sum(dim=0) + ((mean_i - bmean) ** 2).sum(dim=0)) * hw
            self.moments[name].merge(float(n * hw), bmean.numpy(), m2.numpy())
            if self.per_image:
                self._means[name].append(mean_i.numpy())
                self._vars[name].append(var_i.numpy())
        return hook

    def __enter__(self) -> BatchNormStatsCollector:
        for name, module in self.layers:
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def image_means(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self._means.items() if v}

    @property
    def image_vars(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self._vars.items() if v}


# --------------------------------------------------------------------------- distances

def layer_distances(model: nn.Module, target: dict[str, tuple[np.ndarray, np.ndarray]]
                    ) -> pd.DataFrame:
    """Distance of each BatchNorm layer's stored ImageNet statistics from the target's.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose BatchNorm layers hold the ImageNet running statistics.
    target : dict
        ``{layer name: (mean, variance)}`` of the target activations at each layer's input.

    Returns
    -------
    pandas.DataFrame
        One row per layer in network order: ``layer``, ``depth`` (0-based position), ``channels``,
        ``frechet`` (sum over channels of :func:`frechet_diagonal`), ``frechet_norm`` (mean over
        channels of the distance divided by ``running_var + eps``), ``mean_shift`` (mean over
        channels of ``|m1 - m2| / sqrt(s1 + eps)``) and ``var_ratio`` (median over channels of
        ``s2 / (s1 + eps)``).
    """
    rows = []
    for depth, (name, bn) in enumerate(batchnorm_layers(model)):
        if name not in target:
            raise KeyError(f"no target statistics for BatchNorm layer {name!r}")
        m2, s2 = (np.asarray(a, dtype=np.float64) for a in target[name])
        m1 = bn.running_mean.detach().double().cpu().numpy()
        s1 = bn.running_var.detach().double().cpu().numpy()
        d = frechet_diagonal(m1, s1, m2, s2)
        scale = s1 + float(bn.eps)
        rows.append({"layer": name, "depth": depth, "channels": len(m1),
                     "frechet": float(d.sum()), "frechet_norm": float((d / scale).mean()),
                     "mean_shift": float((np.abs(m1 - m2) / np.sqrt(scale)).mean()),
                     "var_ratio": float(np.median(s2 / scale))})
    return pd.DataFrame(rows)


def domain_distance(per_layer: pd.DataFrame) -> float:
    """The headline distance: mean over layers of ``frechet_norm`` (:data:`AGGREGATION`)."""
    return float(per_layer["frechet_norm"].mean())


def _pooled(means: np.ndarray, vars_: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Mean and population variance of the union of images weighted by ``weights`` (B, n).

    Per-image means are centred on their overall mean first, so the between-image variance is
    computed without cancellation.
    """
    n = weights.sum(axis=1, keepdims=True)
    centre = means.mean(axis=0)
    d = means - centre
    md = weights @ d / n
    between = weights @ (d ** 2) / n - md ** 2
    within = weights @ vars_ / n
    return centre + md, np.maximum(within + between, 0.0)


def bootstrap_distance(model: nn.Module, image_means: dict[str, np.ndarray],
                       image_vars: dict[str, np.ndarray], n_bootstrap: int = 200,
                       seed: int = 0) -> np.ndarray:
    """Domain distances of ``n_bootstrap`` resamples (with replacement) of the images.

    Each image has the same number of positions per layer, so pooling per-image moments with
    the resampling counts as weights gives exactly the moments of the resampled union.
    """
    if n_bootstrap <= 0:
        return np.empty(0)
    names = [name for name, _ in batchnorm_layers(model)]
    n = len(next(iter(image_means.values())))
    rng = np.random.default_rng(int(seed))
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                        for _ in range(int(n_bootstrap))]).astype(np.float64)
    per_layer = np.empty((int(n_bootstrap), len(names)))
    for j, (name, bn) in enumerate(batchnorm_layers(model)):
        mean_b, var_b = _pooled(image_means[name], image_vars[name], weights)
        m1 = bn.running_mean.detach().double().cpu().numpy()
        s1 = bn.running_var.detach().double().cpu().numpy()
        d = (m1 - mean_b) ** 2 + (np.sqrt(s1) - np.sqrt(var_b)) ** 2
        per_layer[:, j] = (d / (s1 + float(bn.eps))).mean(axis=1)
    return per_layer.mean(axis=1)


def noise_floor(model: nn.Module, image_means: dict[str, np.ndarray],
                image_vars: dict[str, np.ndarray], seed: int = 0) -> float:
    """Aggregated normalised distance between two random halves of the same images.

    What the distance looks like between two samples of one dataset: sampling noise alone.
    Channels are normalised by the ImageNet variance, as in the headline. Both halves are noisy
    and half the size, so this overstates the sampling bias of the headline (one sample of ``n``
    against fixed ImageNet statistics) by about four times: a conservative floor.
    """
    n = len(next(iter(image_means.values())))
    if n < 4:
        return float("nan")
    perm = np.random.default_rng(int(seed)).permutation(n)
    w = np.zeros((2, n))
    w[0, perm[: n // 2]] = 1.0
    w[1, perm[n // 2:]] = 1.0
    layers = []
    for name, bn in batchnorm_layers(model):
        mean_b, var_b = _pooled(image_means[name], image_vars[name], w)
        d = frechet_diagonal(mean_b[0], var_b[0], mean_b[1], var_b[1])
        layers.append(float((d / (bn.running_var.detach().double().numpy()
                                  + float(bn.eps))).mean()))
    return float(np.mean(layers))


@dataclasses.dataclass
class DomainDistance:
    """The distance of one dataset from ImageNet as seen by one network."""

    backbone: str
    dataset: str
    n_images: int
    distance: float
    se: float
    ci_low: float
    ci_high: float
    noise_floor: float
    per_layer: pd.DataFrame
    seconds: float
    n_bootstrap: int
    weights_tag: str = ""

    def row(self) -> dict[str, Any]:
        """The summary as one table row (no per-layer detail)."""
        return {"backbone": self.backbone, "dataset": self.dataset, "n_images": self.n_images,
                "distance": self.distance, "se": self.se, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "noise_floor": self.noise_floor,
                "n_layers": len(self.per_layer), "n_bootstrap": self.n_bootstrap,
                "seconds": self.seconds, "weights": self.weights_tag}


def _dataset_name(manifest: pd.DataFrame) -> str:
    names = manifest["dataset"].astype(str).unique() if "dataset" in manifest.columns else []
    return str(names[0]) if len(names) == 1 else ",".join(map(str, names))


def measure_domain_distance(backbone: Any, manifest: pd.DataFrame, *, n_images: int = 256,
                            seed: int = 0, batch_size: int = 32, n_bootstrap: int = 200,
                            num_workers: int = 0, device: str = "cpu") -> DomainDistance:
    """Run ``backbone`` on a seeded subset of ``manifest`` and measure its distance from ImageNet.

    Parameters
    ----------
    backbone : str or fusion_utils.features.backbones.Backbone
        A registered name (ImageNet weights) or a built backbone.
    manifest : pandas.DataFrame
        Rows of one dataset (``record_id``, ``dataset``, ``label``, ``path``, ``split``).
    n_images : int
        Size of the seeded subset (drawn in proportion from every split and class by
        :func:`~fusion_utils.features.extraction.subsample_manifest`); 0: every row.
    seed : int
        Seed of the subset and of the bootstrap.
    batch_size, num_workers, device
        Data loading and where the network runs.
    n_bootstrap : int
        Resamples of the images for the standard error and the 95 % interval.
    """
    from torch.utils.data import DataLoader

    from fusion_utils.features.backbones import get_backbone
    from fusion_utils.features.datasets import ManifestImageDataset
    from fusion_utils.features.extraction import subsample_manifest

    start = time.perf_counter()
    bb = get_backbone(backbone) if isinstance(backbone, str) else backbone
    subset = subsample_manifest(manifest, int(n_images), seed=int(seed))
    if len(subset) < 2:
        raise ValueError(f"need at least 2 images, the manifest subset has {len(subset)}")
    data = ManifestImageDataset.for_backbone(subset, bb)
    loader = DataLoader(data, batch_size=int(batch_size), shuffle=False,
                        num_workers=int(num_workers))
    model = bb.features.eval().to(device)
    with BatchNormStatsCollector(model) as col, torch.inference_mode():
        for x, _, _ in loader:
            model(x.to(device))
    model.to("cpu")
    target = {name: (m.mean, m.var) for name, m in col.moments.items()}
    per_layer = layer_distances(model, target)
    means, vars_ = col.image_means, col.image_vars
    boot = bootstrap_distance(model, means, vars_, n_bootstrap=n_bootstrap, seed=seed)
    distance = domain_distance(per_layer)
    se = float(boot.std(ddof=1)) if len(boot) > 1 else float("nan")
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if len(boot) > 1
              else (float("nan"), float("nan")))
    return DomainDistance(
        backbone=getattr(bb, "name", str(backbone)), dataset=_dataset_name(subset),
        n_images=len(subset), distance=distance, se=se, ci_low=float(lo), ci_high=float(hi),
        noise_floor=noise_floor(model, means, vars_, seed=seed), per_layer=per_layer,
        seconds=time.perf_counter() - start, n_bootstrap=int(n_bootstrap),
        weights_tag=getattr(bb, "weights_tag", ""))


# --------------------------------------------------------------------------- image statistics

STATISTICS = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "entropy", "skewness",
              "kurtosis", "median", "sparsity", "colourfulness", "edge_density",
              "high_freq_energy")
"""Columns of :func:`image_statistics` (see the module docstring)."""


def _one_image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Statistics of one ``(3, H, W)`` float image in [0, 1]."""
    from scipy import ndimage, stats

    r, g, b = (rgb[i].astype(np.float64) for i in range(3))
    gray = 0.299 * r + 0.587 * g + 0.114 * b
    levels = np.clip(np.round(gray * 255), 0, 255).astype(np.int64)
    counts = np.bincount(levels.ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = (np.sqrt(rg.std() ** 2 + yb.std() ** 2)
                 + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    grad = np.hypot(ndimage.sobel(gray, axis=0), ndimage.sobel(gray, axis=1)) / 8.0
    power = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))) ** 2
    h, w = gray.shape
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)),
                         indexing="ij")
    high = np.hypot(fy, fx) > 0.25  # half the Nyquist frequency (0.5 cycles/pixel)
    total = power.sum()
    flat = gray.ravel()
    constant = flat.std() == 0
    return {
        "mean_r": float(r.mean()), "mean_g": float(g.mean()), "mean_b": float(b.mean()),
        "std_r": float(r.std()), "std_g": float(g.std()), "std_b": float(b.std()),
        "entropy": float(-(p * np.log2(p)).sum()),
        "skewness": 0.0 if constant else float(stats.skew(flat)),
        "kurtosis": 0.0 if constant else float(stats.kurtosis(flat)),
        "median": float(np.median(flat)),
        "sparsity": float(np.count_nonzero(levels) / levels.size),
        "colourfulness": float(colourful),
        "edge_density": float((grad > 0.1).mean()),
        "high_freq_energy": float(power[high].sum() / total) if total > 0 else 0.0,
    }


def image_statistics(manifest: pd.DataFrame, *, n_images: int = 256, seed: int = 0,
                     size: int = 224) -> pd.DataFrame:
    """Per-image statistics (:data:`STATISTICS`) of a seeded subset, as the network sees it.

    Images are loaded and resized exactly as for the network (HAM10000 photographs, PTB-XL
    montages drawn at ``size``), before normalisation. One row per image with ``record_id`` and
    ``dataset``.
    """
    from fusion_utils.features.datasets import ManifestImageDataset
    from fusion_utils.features.extraction import subsample_manifest

    subset = subsample_manifest(manifest, int(n_images), seed=int(seed))
    data = ManifestImageDataset(subset, input_size=int(size))
    rows = []
    for i in range(len(data)):
        stats = _one_image_statistics(data.image(i, augmented=False).numpy())
        rows.append({"record_id": data.records.at[i, "record_id"],
                     "dataset": data.records.at[i, "dataset"], **stats})
    return pd.DataFrame(rows)


def statistics_distance(a: pd.DataFrame, b: pd.DataFrame, *,
                        columns: Sequence[str] = STATISTICS, n_bootstrap: int = 200,
                        seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Compare two datasets' image statistics.

    Each statistic is divided by the pooled standard deviation of the two samples; the diagonal
    Frechet distance of each (standardised) statistic is its ``contribution``, and their sum the
    distance. The bootstrap resamples images within each dataset.

    Returns
    -------
    (pandas.DataFrame, dict)
        Per statistic: the two means and standard deviations, the standardised mean difference
        and the contribution; and ``{"distance", "se", "ci_low", "ci_high", "n_a", "n_b"}``.
    """
    cols = list(columns)
    missing = [c for c in cols if c not in a.columns or c not in b.columns]
    if missing:
        raise ValueError(f"statistics table lacks column(s) {', '.join(missing)}")
    xa, xb = a[cols].to_numpy(np.float64), b[cols].to_numpy(np.float64)
    pooled = np.sqrt((xa.var(axis=0) * len(xa) + xb.var(axis=0) * len(xb)) / (len(xa) + len(xb)))
    pooled[pooled == 0] = 1.0
    za, zb = xa / pooled, xb / pooled

    def contrib(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return frechet_diagonal(u.mean(axis=0), u.var(axis=0), v.mean(axis=0), v.var(axis=0))

    c = contrib(za, zb)
    rng = np.random.default_rng(int(seed))
    boot = np.array([contrib(za[rng.integers(0, len(za), len(za))],
                             zb[rng.integers(0, len(zb), len(zb))]).sum()
                     for _ in range(int(n_bootstrap))])
    table = pd.DataFrame({
        "statistic": cols, "mean_a": xa.mean(axis=0), "std_a": xa.std(axis=0),
        "mean_b": xb.mean(axis=0), "std_b": xb.std(axis=0),
        "std_mean_difference": (xb.mean(axis=0) - xa.mean(axis=0)) / pooled,
        "contribution": c})
    summary = {"distance": float(c.sum()),
               "se": float(boot.std(ddof=1)) if len(boot) > 1 else float("nan"),
               "ci_low": float(np.percentile(boot, 2.5)) if len(boot) else float("nan"),
               "ci_high": float(np.percentile(boot, 97.5)) if len(boot) else float("nan"),
               "n_a": len(xa), "n_b": len(xb)}
    return table, summary


# --------------------------------------------------------------------------- vs the grid

def transfer_differences(results: pd.DataFrame, metric: str = "auroc_macro") -> pd.DataFrame:
    """FT minus BN and fused minus image-only, per dataset and backbone, from a results table.

    Parameters
    ----------
    results : pandas.DataFrame
        A grid's results table (:mod:`fusion_utils.experiments.results`).
    metric : {"auroc_macro", "balanced_accuracy"}
        Macro metric compared (:func:`fusion_utils.experiments.real_edition.headline`).

    Returns
    -------
    pandas.DataFrame
        One row per ``dataset``, ``backbone`` and ``augment``: ``bn`` and ``ft`` (image-only),
        ``ft_minus_bn`` (NaN when the grid lacks either), ``metadata_gain_bn`` and
        ``metadata_gain_ft`` (fused minus image-only).
    """
    from fusion_utils.experiments.real_edition import headline

    h = headline(results)
    if metric not in h.columns:
        raise ValueError(f"metric {metric!r} not in the results' headline columns "
                         f"{[c for c in h.columns if c not in ('config_id', 'model')]}")
    wide = h.pivot_table(index=["dataset", "backbone", "augment"], columns=["mode", "model"],
                         values=metric, aggfunc="first", observed=True)
    out = pd.DataFrame(index=wide.index)

    def col(mode: str, model: str) -> pd.Series:
        key = (mode, model)
        return wide[key] if key in wide.columns else pd.Series(np.nan, index=wide.index)

    out["bn"], out["ft"] = col("bn", "image"), col("ft", "image")
    out["ft_minus_bn"] = out["ft"] - out["bn"]
    out["metadata_gain_bn"] = col("bn", "fused") - col("bn", "image")
    out["metadata_gain_ft"] = col("ft", "fused") - col("ft", "image")
    out.columns.name = None
    return out.reset_index()


def exact_permutation_p(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho of ``x`` and ``y`` and its exact two-sided permutation p-value.

    With ``n`` points there are ``n!`` orderings, so the smallest attainable p-value is
    ``2 / n!`` (capped at 1): 1.0 for two points, 1/3 for three. That is what "cannot be
    tested" means here, computed rather than asserted. ``(nan, nan)`` below two points.
    """
    import itertools

    from scipy.stats import rankdata

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(xa) != len(ya):
        raise ValueError(f"x and y differ in length ({len(xa)} and {len(ya)})")
    if len(xa) < 2 or len(xa) > 8:
        if len(xa) > 8:
            raise ValueError("exact permutation test limited to 8 points")
        return float("nan"), float("nan")
    rx, ry = rankdata(xa), rankdata(ya)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        den = np.sqrt((a ** 2).sum() * (b ** 2).sum())
        return float((a * b).sum() / den) if den > 0 else float("nan")

    observed = rho(rx, ry)
    if not np.isfinite(observed):
        return observed, float("nan")
    perms = [rho(rx, ry[list(p)]) for p in itertools.permutations(range(len(ry)))]
    p = float(np.mean([abs(r) >= abs(observed) - 1e-12 for r in perms]))
    return observed, p


def compare_with_transfer(distances: pd.DataFrame, differences: pd.DataFrame) -> pd.DataFrame:
    """Join per-(dataset, backbone) distances with the grid's differences (no augmentation)."""
    diff = differences
    if "augment" in diff.columns:
        diff = diff[~diff["augment"].astype(bool)].drop(columns="augment")
    keep = [c for c in ("dataset", "backbone", "n_images", "distance", "se") if c in distances]
    return distances[keep].merge(diff, on=["dataset", "backbone"], how="left")


# --------------------------------------------------------------------------- figures

_LABELS = {"ham10000": "HAM10000", "ptbxl": "PTB-XL"}


def plot_distances(distances: pd.DataFrame, layers: pd.DataFrame, *, title: str = "") -> Any:
    """Two panels: the domain distance per backbone and dataset (bars, 95 % bootstrap interval),
    and the per-layer normalised distance against relative depth (one line per backbone and
    dataset). Figures are drawn here, not in the chapter (the book's convention).

    Parameters
    ----------
    distances : pandas.DataFrame
        Rows of :meth:`DomainDistance.row` (``backbone``, ``dataset``, ``distance``,
        ``ci_low``, ``ci_high``).
    layers : pandas.DataFrame
        Per-layer tables with ``backbone`` and ``dataset`` columns added.
    """
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8),
                                   gridspec_kw={"width_ratios": [1, 1.5]})
    backbones = list(dict.fromkeys(distances["backbone"]))
    datasets = list(dict.fromkeys(distances["dataset"]))
    width = 0.8 / max(1, len(datasets))
    colours = {d: c for d, c in zip(datasets, ("tab:orange", "tab:blue", "tab:green"),
                                    strict=False)}
    for k, d in enumerate(datasets):
        sub = distances[distances["dataset"] == d].set_index("backbone").reindex(backbones)
        x = np.arange(len(backbones)) + (k - (len(datasets) - 1) / 2) * width
        err = np.vstack([sub["distance"] - sub["ci_low"], sub["ci_high"] - sub["distance"]])
        ax0.bar(x, sub["distance"], width, yerr=err, capsize=3, color=colours.get(d),
                label=_LABELS.get(d, d))
    ax0.set_xticks(np.arange(len(backbones)))
    ax0.set_xticklabels([b.replace("efficientnet_", "") for b in backbones])
    ax0.set_ylabel("distance from ImageNet\n(mean normalised Frechet)")
    ax0.legend(frameon=False)
    styles = ("-", "--", ":", "-.")
    for (b, d), g in layers.groupby(["backbone", "dataset"], sort=False):
        depth = g["depth"] / max(1, g["depth"].max())
        ax1.plot(depth, g["frechet_norm"], styles[backbones.index(b) % len(styles)]
                 if b in backbones else "-", color=colours.get(d), lw=1.2,
                 label=f"{_LABELS.get(d, d)}, {b.replace('efficientnet_', '')}")
    ax1.set_yscale("log")
    ax1.set_xlabel("relative depth of the BatchNorm layer (0: stem, 1: head)")
    ax1.set_ylabel("per-layer normalised distance")
    ax1.legend(frameon=False, fontsize=8, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_statistics(stats: pd.DataFrame, columns: Sequence[str] = ("mean_r", "std_r",
                                                                      "entropy", "colourfulness",
                                                                      "edge_density",
                                                                      "high_freq_energy")
                    ) -> Any:
    """Histograms of a few image statistics per dataset (one panel each)."""
    import matplotlib.pyplot as plt

    cols = [c for c in columns if c in stats.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.3 * len(cols), 2.6), squeeze=False)
    for ax, c in zip(axes[0], cols, strict=True):
        for d, g in stats.groupby("dataset", sort=False):
            ax.hist(g[c], bins=20, alpha=0.6, label=_LABELS.get(d, d),
                    color={"ham10000": "tab:orange", "ptbxl": "tab:blue"}.get(d))
        ax.set_title(c, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- real edition CLI

def _git_commit() -> str:
    import subprocess

    from fusion_utils.paths import project_root

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=project_root(), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def real_output_dir() -> Path:
    """``results/real/domain_similarity``: the committed real-data distances."""
    from fusion_utils.experiments.real_edition import results_dir

    return results_dir() / "domain_similarity"


def run_real(*, backbones: Iterable[str] = ("efficientnet_lite0", "efficientnet_lite1",
                                            "efficientnet_lite2"),
             n_images: int = 256, seed: int = 0, n_bootstrap: int = 200, batch_size: int = 32,
             out_dir: str | os.PathLike[str] | None = None, command: str = "") -> Path:
    """Compute the distances on the real manifests and write them with their provenance.

    Writes ``distances.parquet`` (one row per backbone and dataset), ``layers.parquet`` (one row
    per BatchNorm layer), ``image_statistics.parquet`` (per image) and
    ``statistics_distance.parquet``, and ``PROVENANCE.json``.
    """
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.experiments.real_edition import (
        cohort_summary,
        data_checksums,
        machine_description,
        real_manifest_path,
    )
    from fusion_utils.io import atomic_path, atomic_write_json

    out = Path(out_dir) if out_dir else real_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    started = pd.Timestamp.now(tz="UTC").isoformat()
    manifests = {d: load_manifest(real_manifest_path(d)) for d in ("ham10000", "ptbxl")}
    rows, layers, timings = [], [], {}
    for name in backbones:
        for dataset, manifest in manifests.items():
            r = measure_domain_distance(name, manifest, n_images=n_images, seed=seed,
                                        n_bootstrap=n_bootstrap, batch_size=batch_size)
            print(f"{name} {dataset}: {r.distance:.4f} +- {r.se:.4f} (n={r.n_images}, "
                  f"{r.seconds:.0f} s)", file=sys.stderr, flush=True)
            rows.append(r.row())
            layers.append(r.per_layer.assign(backbone=name, dataset=dataset))
            timings[f"{name}/{dataset}"] = round(r.seconds, 1)
    t0 = time.perf_counter()
    stats = pd.concat([image_statistics(m, n_images=n_images, seed=seed)
                       for m in manifests.values()], ignore_index=True)
    table, summary = statistics_distance(stats[stats["dataset"] == "ham10000"],
                                         stats[stats["dataset"] == "ptbxl"],
                                         n_bootstrap=n_bootstrap, seed=seed)
    timings["image_statistics"] = round(time.perf_counter() - t0, 1)
    frames = {"distances": pd.DataFrame(rows), "layers": pd.concat(layers, ignore_index=True),
              "image_statistics": stats,
              "statistics_distance": table.assign(**{f"summary_{k}": v
                                                     for k, v in summary.items()})}
    for stem, frame in frames.items():
        with atomic_path(out / f"{stem}.parquet", suffix=".parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    provenance = {
        "command": command or "python -m fusion_utils.features.domain_similarity real",
        "git_commit": _git_commit(), "start": started,
        "end": pd.Timestamp.now(tz="UTC").isoformat(),
        "parameters": {"backbones": list(backbones), "n_images": n_images, "seed": seed,
                       "n_bootstrap": n_bootstrap, "batch_size": batch_size},
        "aggregation": AGGREGATION, "seconds": timings,
        "data_checksums_sha256": data_checksums(), "machine": machine_description(),
        "cohorts": cohort_summary(),
        "manifests": {d: str(real_manifest_path(d)) for d in manifests},
    }
    atomic_write_json(out / "PROVENANCE.json", provenance)
    return out / "distances.parquet"


def load_real(out_dir: str | os.PathLike[str] | None = None
              ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """The committed real tables (by stem) and provenance, or ``None`` when absent."""
    out = Path(out_dir) if out_dir else real_output_dir()
    if not (out / "distances.parquet").is_file():
        return None
    tables = {p.stem: pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))}
    prov_path = out / "PROVENANCE.json"
    provenance = json.loads(prov_path.read_text("utf-8")) if prov_path.is_file() else {}
    return tables, provenance


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.features.domain_similarity",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    real = sub.add_parser("real", help="distances on the real manifests -> results/real/"
                                       "domain_similarity")
    real.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,"
                                             "efficientnet_lite2")
    real.add_argument("--n-images", type=int, default=256)
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--n-bootstrap", type=int, default=200)
    real.add_argument("--batch-size", type=int, default=32)
    real.add_argument("--out-dir", default="")
    args = parser.parse_args(argv)
    command = "python -m fusion_utils.features.domain_similarity " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    path = run_real(backbones=[b.strip() for b in args.backbones.split(",") if b.strip()],
                    n_images=args.n_images, seed=args.seed, n_bootstrap=args.n_bootstrap,
                    batch_size=args.batch_size, out_dir=args.out_dir or None, command=command)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
