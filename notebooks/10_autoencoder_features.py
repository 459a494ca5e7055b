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
# # Auto-encoder features atop a frozen CNN
#
# This chapter answers: **do unsupervised features atop a frozen network close the gap to
# fine-tuning?** The paper either uses an ImageNet network's bottleneck features as they are
# (BN) or fine-tunes the whole network with the labels (FT). Ahn et al.
# {cite}`ahn2019unsupervised` propose a third way: keep the network frozen and train a
# convolutional auto-encoder, **without labels**, on its last convolutional feature maps; the
# auto-encoder's code becomes the image representation (AE). Here the auto-encoder (a convolution,
# max-pooling that keeps its indices, unpooling with those indices and a decoder initialised from
# the encoder's weights) is trained on the training images' maps of `efficientnet_lite0`, and its
# pooled code replaces F(X) in the paper's softmax classifier, image-only and fused with the
# metadata, beside BN and FT features of the same network on the same records.
#
# Parameters that change it: `dataset`, `bn_run`/`ft_run` (run folders whose `features.npz` hold
# the BN and FT features; the book grid's by default), `manifest_path`, `max_images` (records used,
# drawn per split and class), the auto-encoder's `code_channels`, `epochs` and `lr`, `seed` and
# `n_bootstrap`. Every choice the paper leaves open is listed, with its reason, in
# `fusion_utils.features.autoencoder`.

# %% tags=["parameters"]
dataset: str = "ptbxl"  # ptbxl or ham10000
bn_run: str = ""  # run folder with BN features.npz; "": runs/book/<dataset>-<lite0>-bn-noaug
ft_run: str = ""  # run folder with FT features.npz; "": runs/book/<dataset>-<lite0>-ft-noaug
manifest_path: str = ""  # cohort manifest; empty: cache/manifests/<dataset>.parquet
max_images: int = 200  # records used (per split and class); 0: all of the BN run's records
code_channels: int = 64  # auto-encoder: channels of the code, the length of the AE features
epochs: int = 5  # auto-encoder: training epochs over the training split's maps
lr: float = 0.001  # auto-encoder: Adam learning rate
seed: int = 0  # seed of the record draw, the auto-encoder and the bootstrap
n_bootstrap: int = 200  # bootstrap resamples of the 95% CIs
results_dir: str = ""  # committed real tables; empty: results/real/autoencoder

# %%
# %matplotlib inline

import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from fusion_utils.data.manifest import default_manifest_path, load_manifest
from fusion_utils.features import autoencoder as ae
from fusion_utils.features.extraction import subsample_manifest
from fusion_utils.paths import check_dataset, shared_data_dir
from fusion_utils.run_folder import RunFolder

dataset = check_dataset(dataset)
t_start = time.perf_counter()
backbone = "efficientnet_lite0"
bn_folder = bn_run or f"runs/book/{dataset}-{backbone}-bn-noaug"
ft_folder = ft_run or f"runs/book/{dataset}-{backbone}-ft-noaug"
manifest_file = manifest_path or default_manifest_path(dataset)
manifest = load_manifest(manifest_file)
sets = {"bn": RunFolder(bn_folder).read_features()}
try:
    sets["ft"] = RunFolder(ft_folder).read_features()
except FileNotFoundError:
    print(f"no FT features in {ft_folder}: BN vs AE only")
records = manifest[manifest["record_id"].astype(str).isin(set(sets["bn"].ids))]
records = subsample_manifest(records, max_images, seed=seed)
data_name = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}[dataset]
data_dir = str(manifest.attrs.get("data_dir", ""))
cohort = ("demo " if "demo" in data_dir else
          "real " if data_dir.startswith(str(shared_data_dir())) else "")
data_label = f"{cohort}{data_name}"
display(Markdown(
    f"**Data:** {data_label} (manifest `{manifest_file}`), {len(records):,} records "
    f"({(records['split'] == 'train').sum()} train, {(records['split'] == 'val').sum()} "
    f"validation, {(records['split'] == 'test').sum()} test); BN features from `{bn_folder}`"
    + (f", FT features from `{ft_folder}`" if "ft" in sets else "") + "."))

# %% [markdown]
# ## The auto-encoder, trained without labels
#
# The frozen network's maps (1280 channels on a 7 x 7 grid) are computed once and cached in
# float16; the auto-encoder learns to reconstruct the training records' maps (standardised per
# channel) through a 64-channel code pooled to 4 x 4. Its labels are never used.

# %%
config = ae.AEConfig(code_channels=code_channels, epochs=epochs, lr=lr, seed=seed)
sets["ae"], trained = ae.autoencoder_features(records, backbone, config)
info = sets["ae"].info
history = pd.DataFrame(trained.history)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(history["epoch"], history["loss"], marker="o")
ax.set_xlabel("epoch")
ax.set_ylabel("reconstruction MSE (standardised maps)")
ax.set_title(f"{data_label}: {info['n_train']} training records' maps")
plt.show()
display(Markdown(
    f"Maps {' x '.join(map(str, info['maps_shape']))} per record ({info['maps_seconds']:.0f} s, "
    f"cached); {len(history)} epochs in {info['train_seconds']:.0f} s; reconstruction error "
    f"{history['loss'].iloc[0]:.3f} after the first epoch, {history['loss'].iloc[-1]:.3f} after "
    f"the last; AE features: {sets['ae'].X.shape[1]} per record."))

# %% [markdown]
# *Figure: reconstruction error per epoch.* Mean squared error between the auto-encoder's
# output and its input, the frozen network's standardised maps of the training records (named
# in the title), averaged over each epoch's mini-batches. A falling curve shows the code keeps
# more of the maps; it says nothing yet about the classes.
#
# ## BN vs AE vs FT
#
# The same softmax classifier (chapter 04's training) on each representation, image-only and
# fused with the metadata, scored on the test split with stratified bootstrap CIs and paired
# differences (the same resamples for both models).

# %%
metrics, cmp_info = ae.compare_features(sets, records, n_bootstrap=n_bootstrap, seed=seed)
display(Markdown(
    f"Macro AUROC and balanced accuracy (macro sensitivity) with 95% bootstrap CIs "
    f"({n_bootstrap} resamples) on the {cmp_info['n_test']} {data_label} test records; "
    f"features per record: " + ", ".join(f"{k} {v}" for k, v in cmp_info["n_features"].items())
    + "."))
ae.summary_table(metrics)

# %%
display(Markdown(
    f"**Answer ({data_label}, {cmp_info['n_test']} test records):** " + ae.answer(metrics)
    + " Balanced accuracy: " + ae.answer(metrics, "sensitivity")))
print(f"chapter computation: {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# ## On the real data (committed)
#
# The same comparison on the real cohort, computed once with the module's command line and
# committed under `results/real/autoencoder/` with its provenance (shown in both editions). For
# PTB-XL (1,533 records) the feature maps take minutes on 2 CPU cores; for HAM10000 (10,015
# images, 1.26 GB of float16 maps) about 20 minutes of map extraction plus the training, so its
# table is added by running `python -m fusion_utils.features.autoencoder real --dataset ham10000`.

# %%
shown = 0
for name in ("ptbxl", "ham10000"):
    committed = ae.committed_autoencoder(name, results_dir or None)
    label = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}[name]
    if committed is None:
        display(Markdown(
            f"**Real {label}:** no committed table yet (`results/real/autoencoder/{name}."
            f"parquet`); compute it with `python -m fusion_utils.features.autoencoder real "
            f"--dataset {name}`."))
        continue
    real_metrics, prov = committed
    shown += 1
    hist = prov.get("history", [])
    display(Markdown(
        f"**Real {label}** (committed): {prov.get('n_records', '?'):,} records, "
        f"{prov.get('n_train', '?')} train, {prov.get('n_test', '?')} test; "
        f"{prov.get('n_bootstrap')} bootstrap resamples; auto-encoder "
        f"{prov.get('autoencoder', {}).get('code_channels')} channels, {len(hist)} epochs"
        + (f", reconstruction error {hist[0]['loss']:.3f} -> {hist[-1]['loss']:.3f}" if hist
           else "") + f". Features: {', '.join(prov.get('features', {}))} from the real runs, "
        f"AE computed by the command `{prov.get('command')}`; git commit "
        f"`{prov.get('git_commit')}`; {prov.get('seconds')} s on "
        f"{prov.get('machine', {}).get('cores')} cores."))
    display(ae.summary_table(real_metrics))
    display(Markdown(f"**Answer (real {label}):** " + ae.answer(real_metrics) + " Balanced "
                     "accuracy: " + ae.answer(real_metrics, "sensitivity")))
print(f"{shown} committed real table(s) shown")

# %% [markdown]
# ## Summary
#
# - The auto-encoder sees only the training images' maps, never a label; its pooled code is
#   scored with the same classifier, records and bootstrap as BN and FT.
# - "Above" or "below" in the answers means the whole paired 95% interval lies on one side of
#   zero; the share of the BN-to-FT gap that AE covers is a point estimate.
# - A 64-number code is twenty times shorter than the 1280-number BN vector: whatever the
#   auto-encoder keeps, it is a compression of what BN already holds, learned for reconstruction
#   rather than for the classes.
#
# ## Exercises
#
# 1. Give the code as many channels as the classifier gets from BN in the paper's smallest
#    network (256) and train longer:
#    `fusion-book run 10_autoencoder_features out.ipynb -p code_channels 256 -p epochs 10`
# 2. Run the chapter on the skin lesions:
#    `fusion-book run 10_autoencoder_features out.ipynb -p dataset ham10000`
# 3. Use every record of the demo cohort:
#    `fusion-book run 10_autoencoder_features out.ipynb -p max_images 0`
#
# ```{admonition} Solutions
# :class: dropdown
# 1. A wider code reconstructs the maps better (lower error) and gives the classifier more
#    numbers; compare the `ae - bn` difference with the 64-channel run's. The maps are cached, so
#    only the training is repeated.
# 2. In the paper BN suits HAM10000 better than FT; check whether FT still beats BN there and
#    where AE falls between them.
# 3. More test records narrow the intervals; the verdicts ("above", "within noise of") can
#    change where an interval was close to zero.
# ```
