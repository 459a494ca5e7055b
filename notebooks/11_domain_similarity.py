# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.16.0
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How far is each dataset from ImageNet?
#
# This chapter answers: **is HAM10000 measurably closer to ImageNet than the PTB-XL scalogram
# montages, and does that line up with the BN/FT and metadata results of the grid?** The paper
# explains why frozen ("BN") features suit HAM10000 and fine-tuning suits PTB-XL by how much each
# dataset resembles ImageNet's photographs, without measuring it. Van den Brandt et al.
# {cite}`vandenbrandt2021cats` ("Cats, not CAT scans") measured dataset similarity in several
# ways and found none of them predicted transfer. Here the distance is read from what the
# pretrained network itself stores:
# every BatchNorm layer keeps the mean and variance of its input over ImageNet, and the same
# statistics of the target images at that layer are compared with them, layer by layer, without
# a single ImageNet image. The chapter also compares the two targets with each other on simple
# image statistics (those of the Cats paper's code), and finally sets the distances against the
# grid's BN-vs-FT and with-vs-without-metadata differences.
#
# Parameters that change it: `backbones` (any of the three offline EfficientNet-Lite networks),
# `n_images` (size of the seeded subset per dataset), `n_bootstrap`, `seed`, the two manifests,
# the grid to compare with (`results_path` or `runs_dir`) and `real_dir` (the committed
# real-data distances; `none` hides them).

# %% tags=["parameters"]
backbones: str = "efficientnet_lite0"  # comma-separated offline backbones measured live
n_images: int = 64  # images per dataset (a seeded subset, every split and class in proportion)
n_bootstrap: int = 200  # bootstrap resamples of the images (standard error, 95 % interval)
seed: int = 0  # seed of the subset and of the bootstrap
ham_manifest: str = ""  # HAM10000 manifest; empty: cache/manifests/ham10000.parquet (demo)
ptbxl_manifest: str = ""  # PTB-XL manifest; empty: cache/manifests/ptbxl.parquet (demo)
results_path: str = ""  # grid results parquet to compare with; empty: collect runs_dir now
runs_dir: str = ""  # grid runs folder; empty: runs/book, the book grid
real_dir: str = ""  # committed real distances; empty: results/real/domain_similarity; none: hide

# %%
# %matplotlib inline
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from fusion_utils.data.manifest import default_manifest_path, load_manifest
from fusion_utils.experiments import real_edition
from fusion_utils.experiments import results as grid_results
from fusion_utils.features import domain_similarity as dsim
from fusion_utils.paths import runs_dir as default_runs_dir

pd.set_option("display.precision", 4)
torch.manual_seed(seed)

manifests = {
    "ham10000": load_manifest(ham_manifest or default_manifest_path("ham10000")),
    "ptbxl": load_manifest(ptbxl_manifest or default_manifest_path("ptbxl")),
}


def cohort(m: pd.DataFrame) -> str:
    """'synthetic demo' or 'real', from where the manifest's data live."""
    return "synthetic demo" if "demo" in str(m.attrs.get("data_dir", "")) else "real"


names = [b.strip() for b in backbones.split(",") if b.strip()]
data_label = "; ".join(
    f"{cohort(m)} {'HAM10000' if d == 'ham10000' else 'PTB-XL'} cohort "
    f"({len(m):,} {'images' if d == 'ham10000' else 'records'}, seeded subset of "
    f"{min(n_images, len(m)) if n_images > 0 else len(m):,})"
    for d, m in manifests.items())
print(f"Measured live: {', '.join(names)} on the {data_label}.")

# %% [markdown]
# ## What a pretrained network remembers about ImageNet
#
# A BatchNorm layer normalises each channel $c$ of its input with a mean $m_{1c}$ and variance
# $s_{1c}$ that it accumulated over ImageNet training images (`running_mean`, `running_var`).
# Run the frozen network in evaluation mode on target images, record the per-channel mean
# $m_{2c}$ and variance $s_{2c}$ of the same layer's input, and compare the two Gaussians:
#
# $$d_c = (m_{1c} - m_{2c})^2 + s_{1c} + s_{2c} - 2\sqrt{s_{1c} s_{2c}},$$
#
# the Fréchet (2-Wasserstein) distance under a diagonal covariance. A layer's scale is
# arbitrary, so each $d_c$ is divided by $s_{1c} + \varepsilon$ (the layer's own epsilon): this
# is the distance *after* the layer's normalisation, in the units the network itself uses, where
# 1 means, for example, a mean shifted by one ImageNet standard deviation. The **domain
# distance** is the mean over channels, then over all BatchNorm layers (49 in
# `efficientnet_lite0`, 64 in lite1 and lite2). The target statistics are merged batch by batch
# with Chan's update in float64; each image's moments are kept, so the images can be resampled
# (bootstrap) without running the network again. The *noise floor* is the same distance between
# two random halves of the subset: what sampling alone produces.

# %%
live, live_layers = [], []
for name in names:
    for dataset, manifest in manifests.items():
        r = dsim.measure_domain_distance(name, manifest, n_images=n_images, seed=seed,
                                         n_bootstrap=n_bootstrap)
        live.append(r.row())
        live_layers.append(r.per_layer.assign(backbone=name, dataset=dataset))
live = pd.DataFrame(live)
live_layers = pd.concat(live_layers, ignore_index=True)
live[["backbone", "dataset", "n_images", "distance", "se", "ci_low", "ci_high", "noise_floor",
      "n_layers", "seconds"]]

# %%
fig = dsim.plot_distances(live, live_layers)
plt.show()

# %% [markdown]
# *Figure: distance from ImageNet measured live on the book's cohorts (named in the data line
# above).* Left: the domain distance of each dataset per network, with the 95 % bootstrap
# interval over images. Right: where in the network the difference arises, the per-layer
# normalised distance from the stem (left) to the last convolution (right).

# %%
ratio = live.pivot_table(index="backbone", columns="dataset", values="distance")
if {"ham10000", "ptbxl"} <= set(ratio.columns):
    ratio["ptbxl / ham10000"] = ratio["ptbxl"] / ratio["ham10000"]
    display(ratio)
    closer = ("HAM10000" if (ratio["ham10000"] < ratio["ptbxl"]).all() else
              "PTB-XL" if (ratio["ptbxl"] < ratio["ham10000"]).all() else "neither consistently")
    display(Markdown(
        f"Live, on the {data_label}: the dataset closer to ImageNet for every network measured "
        f"is **{closer}**; the largest standard error is {live['se'].max():.4f} and the "
        f"largest noise floor {live['noise_floor'].max():.4f}, against distances of "
        f"{live['distance'].min():.3f} to {live['distance'].max():.3f}."))

# %% [markdown]
# ## On the real data (committed)
#
# The real distances take minutes per network on two cores, too long for the book build, so
# they were computed once with
# `python -m fusion_utils.features.domain_similarity real` (the three EfficientNet-Lite networks,
# a seeded subset of the real HAM10000 images at 200x150 and of the real PTB-XL montages) and
# committed under `results/real/domain_similarity/` with their provenance. Both editions show
# them.

# %%
real_path = None if real_dir.lower() == "none" else (Path(real_dir) if real_dir else
                                                      dsim.real_output_dir())
real = dsim.load_real(real_path) if real_path is not None else None
if real is None:
    print("No committed real distances shown "
          + ("(real_dir = none)." if real_path is None else
             f"(none at {real_path}: run python -m fusion_utils.features.domain_similarity real)."))
    real_tables, real_prov = {}, {}
else:
    real_tables, real_prov = real
    rd = real_tables["distances"]
    params = real_prov.get("parameters", {})
    display(Markdown(
        f"**Source:** committed, real data: {rd.groupby('dataset')['n_images'].first().to_dict()} "
        f"images per dataset (seed {params.get('seed')}, {params.get('n_bootstrap')} bootstrap "
        f"resamples); command `{real_prov.get('command')}`; git commit "
        f"`{str(real_prov.get('git_commit'))[:12]}`; {real_prov.get('start')} to "
        f"{real_prov.get('end')}; machine {real_prov.get('machine', {}).get('cores')} cores, "
        f"{real_prov.get('machine', {}).get('cpu_model')}."))
    display(rd[["backbone", "dataset", "n_images", "distance", "se", "ci_low", "ci_high",
                "noise_floor", "n_layers"]])

# %%
if real is not None:
    fig = dsim.plot_distances(real_tables["distances"], real_tables["layers"])
    plt.show()

# %% [markdown]
# *Figure: distance from ImageNet on the real data (committed; sizes in the table above).*
# Bars: domain distance per network and dataset with the 95 % bootstrap interval; lines: the
# per-layer normalised distance by relative depth. Without committed real distances the figure
# is absent.

# %%
if real is not None:
    rr = real_tables["distances"].pivot_table(index="backbone", columns="dataset",
                                              values="distance")
    rse = real_tables["distances"].pivot_table(index="backbone", columns="dataset", values="se")
    if {"ham10000", "ptbxl"} <= set(rr.columns):
        gap = rr["ptbxl"] - rr["ham10000"]
        gap_se = (rse["ptbxl"] ** 2 + rse["ham10000"] ** 2) ** 0.5
        display(pd.DataFrame({"ham10000": rr["ham10000"], "ptbxl": rr["ptbxl"],
                              "ptbxl - ham10000": gap, "se of the gap": gap_se,
                              "gap / se": gap / gap_se}))
        display(Markdown(
            "Real data: PTB-XL minus HAM10000 distance is "
            + ", ".join(f"{b.replace('efficientnet_', '')} {g:+.3f} (se {s:.3f})"
                        for b, g, s in zip(gap.index, gap, gap_se, strict=True))
            + "; the real PTB-XL montages are "
            + ("farther from ImageNet than the real HAM10000 images for every network"
               if (gap > 2 * gap_se).all() else
               "not consistently farther from ImageNet than the HAM10000 images")
            + "."))

# %% [markdown]
# ## The two targets compared on simple image statistics
#
# The Cats paper also compared datasets by "statistical meta-features" of their images (its code:
# entropy, skewness, kurtosis, median, standard deviation, mean and sparsity of the
# intensities). These are computed here on the network inputs (resized, before normalisation),
# together with the per-channel means and standard deviations, colourfulness (Hasler and
# Süsstrunk), edge density (share of pixels with a Sobel gradient above 0.1) and high-frequency
# energy (share of spectral power above half the Nyquist frequency). ImageNet images are not
# available here, so this compares the two targets with each other: each statistic is scaled by
# its pooled standard deviation, and the Fréchet distance of each statistic is its contribution.

# %%
stats = pd.concat([dsim.image_statistics(m, n_images=n_images, seed=seed)
                   for m in manifests.values()], ignore_index=True)
stat_table, stat_summary = dsim.statistics_distance(
    stats[stats["dataset"] == "ham10000"], stats[stats["dataset"] == "ptbxl"],
    n_bootstrap=n_bootstrap, seed=seed)
fig = dsim.plot_statistics(stats)
plt.show()

# %% [markdown]
# *Figure: image statistics of the two targets (the live subsets named in the data line).*
# Histograms of six of the statistics, HAM10000 against PTB-XL montages.

# %%
display(stat_table.rename(columns={"mean_a": "mean HAM10000", "std_a": "sd HAM10000",
                                   "mean_b": "mean PTB-XL", "std_b": "sd PTB-XL"})
        .sort_values("contribution", ascending=False).round(3))
display(Markdown(
    f"Live, {stat_summary['n_a']} HAM10000 and {stat_summary['n_b']} PTB-XL images: image-"
    f"statistics distance {stat_summary['distance']:.2f} (bootstrap se "
    f"{stat_summary['se']:.2f}, 95 % interval {stat_summary['ci_low']:.2f} to "
    f"{stat_summary['ci_high']:.2f}); the largest contribution comes from "
    f"`{stat_table.sort_values('contribution').iloc[-1]['statistic']}`."))
if real is not None and "statistics_distance" in real_tables:
    rs = real_tables["statistics_distance"]
    display(Markdown(
        f"Real data (committed, {int(rs['summary_n_a'].iloc[0])} HAM10000 and "
        f"{int(rs['summary_n_b'].iloc[0])} PTB-XL images): distance "
        f"{rs['summary_distance'].iloc[0]:.2f} (se {rs['summary_se'].iloc[0]:.2f}); largest "
        f"contributions: " + ", ".join(
            f"`{r.statistic}` {r.contribution:.2f}"
            for r in rs.sort_values("contribution", ascending=False).head(3).itertuples())
        + "."))

# %% [markdown]
# ## Set against the grid: BN vs FT, with vs without metadata
#
# The grid's results table gives, per dataset and network, the macro AUROC of the image-only
# classifier on frozen (BN) and fine-tuned (FT) features and the change when the metadata are
# fused. If distance from ImageNet explained the paper's finding, the dataset farther from
# ImageNet would gain more from fine-tuning (FT - BN larger).

# %%
grid = grid_results.load_results(results_path, runs_dir, default_runs_dir("book"))
grid_name = ", ".join(sorted(map(str, grid["grid"].dropna().unique()))) or "?"
differences = dsim.transfer_differences(grid)
joined = dsim.compare_with_transfer(live, differences)
print(f"Grid {grid_name} ({grid['config_id'].nunique()} configurations) against the live "
      f"distances ({data_label}); no augmentation:")
joined.round(4)

# %%
def testability(table: pd.DataFrame, column: str, what: str) -> str:
    """What the table can say about distance vs ``column``, computed."""
    t = table.dropna(subset=["distance", column])
    lines = []
    for b, g in t.groupby("backbone"):
        if len(g) >= 2:
            rho, p = dsim.exact_permutation_p(g["distance"], g[column])
            lines.append(f"across the {len(g)} datasets with {b}: Spearman rho {rho:+.0f}, exact "
                         f"permutation p = {p:.2f}")
    for d, g in t.groupby("dataset"):
        if len(g) >= 2:
            rho, p = dsim.exact_permutation_p(g["distance"], g[column])
            lines.append(f"across the {len(g)} networks on {d}: rho {rho:+.2f}, p = {p:.2f} "
                         f"(smallest attainable {min(1.0, 2 / math.factorial(len(g))):.2f})")
    if not lines:
        return f"- {what}: the table has no two rows with both a distance and `{column}`."
    return f"- {what}: " + "; ".join(lines) + "."


display(Markdown("\n".join([
    testability(joined, "ft_minus_bn", "FT - BN (image-only macro AUROC)"),
    testability(joined, "metadata_gain_bn", "metadata gain with BN features"),
])))

# %%
if real is not None:
    try:
        real_grid = real_edition.committed_results()
    except FileNotFoundError as exc:
        print(exc)
        real_grid = None
    if real_grid is not None:
        real_joined = dsim.compare_with_transfer(real_tables["distances"],
                                                 dsim.transfer_differences(real_grid))
        print("Committed real grid (results/real/results.parquet) against the committed real "
              "distances:")
        display(real_joined)
        n_ft = int(real_joined["ft"].notna().sum())
        display(Markdown("\n".join([
            f"- The committed real grid has {n_ft} fine-tuned configuration(s): "
            + ("FT - BN cannot be computed on the real data yet." if n_ft == 0 else
               "FT - BN is in the table."),
            testability(real_joined, "ft_minus_bn", "FT - BN (image-only macro AUROC)"),
            testability(real_joined, "bn", "BN image-only macro AUROC"),
            testability(real_joined, "metadata_gain_bn", "metadata gain with BN features"),
        ])))

# %% [markdown]
# ## What two datasets and three networks can and cannot show
#
# Two datasets give two points: any two points lie on a line, so a correlation between
# "distance from ImageNet" and "benefit of fine-tuning" across datasets is always $\pm 1$ and its
# exact permutation p-value is 1 (computed above): **no correlation can be tested**. Three
# networks on one dataset give at most $3! = 6$ orderings, so even a perfect rank agreement has
# p = 1/3. What the measurement *can* show is narrower and still useful: whether one dataset is
# farther from ImageNet than the other for every network, with a bootstrap interval and a noise
# floor that say the difference is not sampling noise; and where in the network (early layers:
# colour and texture; late layers: object parts) the difference arises. Whether distance
# *causes* a different BN/FT preference would need many datasets (the Cats paper used three
# targets and nine sources, and found no consistent relation).

# %%
def verdict() -> str:
    parts = []
    if real is not None:
        rd = real_tables["distances"].pivot_table(index="backbone", columns="dataset",
                                                  values="distance")
        rse = real_tables["distances"].pivot_table(index="backbone", columns="dataset",
                                                   values="se")
        if {"ham10000", "ptbxl"} <= set(rd.columns):
            farther = (rd["ptbxl"] - rd["ham10000"]
                       > 2 * (rse["ptbxl"] ** 2 + rse["ham10000"] ** 2) ** 0.5)
            parts.append(
                f"On the real data (committed, {int(real_tables['distances']['n_images'].min())}"
                f" images per dataset), PTB-XL montages are farther from ImageNet than HAM10000 "
                f"images for {int(farther.sum())} of {len(farther)} networks "
                f"(distance {rd['ptbxl'].min():.3f}-{rd['ptbxl'].max():.3f} vs "
                f"{rd['ham10000'].min():.3f}-{rd['ham10000'].max():.3f}, standard errors "
                f"<= {rse.max().max():.3f}).")
    parts.append(f"Live on the {data_label}: distances {live['distance'].min():.3f} to "
                 f"{live['distance'].max():.3f} (standard errors <= {live['se'].max():.3f}).")
    parts.append("With two datasets, no relation between this distance and the BN/FT or "
                 "metadata differences can be tested (p = 1 for any two points).")
    return " ".join(parts)


display(Markdown("**Answer.** " + verdict()))

# %% [markdown]
# ## Summary
#
# - The distance of a dataset from ImageNet can be read from an ImageNet network alone: its
#   BatchNorm layers store ImageNet's per-channel statistics, and the Fréchet distance of the
#   target's statistics from them, normalised per channel and averaged over layers, is the
#   domain distance (with a bootstrap interval over images and a split-half noise floor).
# - The answer above states which dataset is farther, for each network, on the real data
#   (committed) and live on the book's cohort.
# - Set against the grid, two datasets cannot support or refute "farther from ImageNet, so
#   fine-tuning helps more": the test has no power with two points (p = 1 whatever the data),
#   and three networks on one dataset cannot reach p < 1/3.
#
# ## Exercises
#
# 1. Measure all three networks live on the default 64 images per dataset. Do the three agree
#    on which dataset is farther?
#
#    ```bash
#    fusion-book run 11_domain_similarity ds_three.ipynb \
#      -p backbones "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
#    ```
#
# 2. Halve and double the subset for one network. The standard error should shrink roughly like
#    $1/\sqrt{n}$; does the distance itself move by more than its standard error?
#
#    ```bash
#    fusion-book run 11_domain_similarity ds_32.ipynb -p n_images 32
#    fusion-book run 11_domain_similarity ds_128.ipynb -p n_images 128
#    ```
#
# ```{admonition} Solutions
# :class: dropdown
# 1. Each network has its own ImageNet statistics, so the distances differ in size, but the
#    ordering of the two datasets is the quantity to compare (the committed real table above
#    answers it on 256 real images per dataset).
# 2. The distance is a squared distance of sample moments, so it carries a small upward bias of
#    order $1/n$ (the noise floor shows its size); the standard error falls like $1/\sqrt{n}$.
#    A change larger than a few standard errors would mean the subset is not representative.
# ```
