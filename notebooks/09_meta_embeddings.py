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
# # Meta-embeddings of several backbones
#
# This chapter answers: **does a learned combination of backbones beat one backbone, with and
# without metadata?** The paper uses one network at a time. Truong et al.
# {cite}`truong2021transferable` fuse the embeddings of several pretrained networks with a
# *Dynamic Visual Meta-Embedding* (DVME): each network's embedding is projected to 512 numbers,
# self-attention runs across the networks (one token per network), the attended tokens are
# concatenated, projected to 512 and classified, all trained end to end, so that the weight of
# each network is learned. Here it is set against two simpler answers on the same cached BN
# features: the best single backbone (chosen on the validation split) and the concatenation of
# all backbones' features into the paper's softmax classifier. Each comes without and with the
# patient metadata (for DVME: as one more token, or concatenated after attention).
#
# Parameters that change it: `dataset`, `run_dirs` (run folders with `features.npz`: the
# backbones), `extra_backbones` (BN features extracted here on the same records, cached),
# `metadata_columns`, `encoding`, DVME's `epochs`, `patience`, `lr` and `seed`, and
# `n_bootstrap`. The choices the DVME paper leaves open are listed in
# `fusion_utils.fusion.meta_embedding`.

# %% tags=["parameters"]
dataset: str = "ptbxl"  # ptbxl or ham10000
run_dirs: str = ""  # run folders/globs, comma-separated; "": runs/book/<dataset>-<lite0>-bn-noaug
extra_backbones: str = "efficientnet_lite1,efficientnet_lite2"  # BN extracted here, cached
manifest_path: str = ""  # cohort manifest; empty: cache/manifests/<dataset>.parquet
metadata_columns: str = ""  # comma-separated metadata columns; empty: all of the manifest's
encoding: str = "paper"  # metadata mapping: paper, standardised or onehot
l2: float = 0.0  # softmax baselines' L2 penalty (0: the paper's classifier, as in the grid)
epochs: int = 200  # DVME: most training epochs
patience: int = 20  # DVME: epochs without a lower validation loss before stopping
lr: float = 1e-4  # DVME: AdamW learning rate
seed: int = 0  # seed of DVME's weights and batches and of the bootstrap
n_bootstrap: int = 200  # bootstrap resamples of the 95% CIs
results_dir: str = ""  # committed real tables; empty: results/real/meta_embedding

# %%
# %matplotlib inline

import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from fusion_utils.data.manifest import default_manifest_path, load_manifest
from fusion_utils.features.extraction import extract_features
from fusion_utils.fusion import meta_embedding as me
from fusion_utils.fusion.plots import plot_attention_by_class
from fusion_utils.paths import check_dataset, shared_data_dir
from fusion_utils.run_folder import RunFolder

dataset = check_dataset(dataset)
t_start = time.perf_counter()
torch.set_num_threads(1)  # DVME's small batches: one thread is as fast, and sums keep one order
torch.manual_seed(seed)
folders = me.resolve_run_dirs(run_dirs or f"runs/book/{dataset}-efficientnet_lite0-bn-noaug")
manifest_file = manifest_path or default_manifest_path(dataset)
manifest = load_manifest(manifest_file)
sets = [RunFolder(f).read_features() for f in folders]
origins = [str(f) for f in folders]
records = manifest[manifest["record_id"].astype(str).isin(set(sets[0].ids))]
for backbone in [b.strip() for b in extra_backbones.split(",") if b.strip()]:
    sets.append(extract_features(records, backbone=backbone, mode="bn", augment=False,
                                 seed=seed, progress=False))
    origins.append(f"extracted here ({sets[-1].info.get('cache_key', backbone)})")
sources = me.sources_from_feature_sets(sets, origins)
data_name = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}[dataset]
data_dir = str(manifest.attrs.get("data_dir", ""))
cohort = ("demo " if "demo" in data_dir else
          "real " if data_dir.startswith(str(shared_data_dir())) else "")
data_label = f"{cohort}{data_name}"
pd.DataFrame({"source": sources.names, "features": [x.shape[1] for x in sources.X],
              "from": sources.run_dirs})

# %%
backbones = sorted({str(fs.info.get("backbone", "?")) for fs in sets})
same = (f" All sources are embeddings of one backbone ({backbones[0]}: BN/FT, with and "
        "without augmentation, from the book's grid), so this computation shows the method, "
        "not a comparison of backbones; the committed real table below compares "
        "backbones.") if len(backbones) == 1 else ""
display(Markdown(
    f"**Data:** {data_label} (manifest `{manifest_file}`), {len(sources):,} records "
    f"({(sources.split == 'train').sum()} train, {(sources.split == 'val').sum()} validation, "
    f"{(sources.split == 'test').sum()} test); {len(sources.names)} sources: "
    + ", ".join(f"`{n}`" for n in sources.names) + "." + same))

# %% [markdown]
# ## Seven classifiers on the same records
#
# The best single backbone and the concatenation use the book's softmax classifier (chapter 4's
# training, fitted on the training split); the backbone is chosen by macro AUROC on the
# validation split, separately without and with metadata. DVME is trained with AdamW on the
# training split and stopped early on the validation loss, keeping the weights of the best
# validation epoch. All seven are then scored once on the test split, with stratified bootstrap
# CIs and paired differences to the best single backbone (the same resamples for both models).

# %%
config = me.DVMEConfig(max_epochs=epochs, patience=patience, lr=lr, seed=seed)
columns = [c.strip() for c in metadata_columns.split(",") if c.strip()] or None
result = me.compare_meta_embeddings(sources, manifest, metadata_columns=columns,
                                    encoding=encoding, classifier_params={"l2": l2},
                                    config=config, n_bootstrap=n_bootstrap, bootstrap_seed=seed)
display(result.selection.round(4))
result.fits.round(2)

# %% [markdown]
# The first table is the validation macro AUROC of each backbone alone (`chosen` marks the
# best single backbone without and with metadata); the second, the training cost of each model
# (DVME: epochs run and the epoch whose weights were kept).
#
# Note what differs besides the combination: the softmax baselines are the paper's classifier,
# fitted to convergence on the training split (unpenalised unless `l2` is set), while DVME is
# stopped early on the validation split, which regularises it. A gain of DVME over the best
# single backbone may therefore come from the regularisation as much as from the combination;
# exercise 3 sets an L2 penalty on the softmax baselines to separate the two.
#
# ## The comparison

# %%
display(Markdown(
    f"Macro AUROC and balanced accuracy (macro sensitivity) with 95% bootstrap CIs "
    f"({n_bootstrap} resamples) on the {result.info['n_test']} {data_label} test records:"))
me.summary_table(result.metrics)

# %% [markdown]
# All nine metrics (macro means; `estimate [95% CI]`):

# %%
me.summary_table(result.metrics, metrics_shown=list(result.metrics["metric"].unique()))

# %%
fig = plot_attention_by_class(result.attention,
                              title=f"{data_label}, {result.info['n_test']} test records")
plt.show()

# %% [markdown]
# *Figure: attention received by each source per true class.* For each DVME model (without
# metadata, with metadata as a token, with metadata after attention), the attention each
# backbone's token (and the metadata token) receives, averaged over heads, over the query
# tokens and over the test records of each true class; each row sums to 1, and equal weights
# would be 1 divided by the number of tokens. The data are named above the panels.

# %%
display(Markdown(
    f"**Answer ({data_label}, {result.info['n_test']} test records):** "
    + me.answer(result.metrics) + " Balanced accuracy: " + me.answer(result.metrics,
                                                                     "sensitivity")))
print(f"chapter computation: {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# ## On the real data (committed)
#
# The same comparison on the real BN features of the three EfficientNet-Lite backbones,
# computed once with the module's command line and committed under
# `results/real/meta_embedding/` with its provenance (shown in both editions of the book). For
# HAM10000 it needs the real BN features of at least two backbones
# (`runs/real/ham10000-*-bn-noaug`); with them, one command adds the table:
# `python -m fusion_utils.fusion.meta_embedding real --dataset ham10000`.

# %%
shown = 0
for name in ("ptbxl", "ham10000"):
    committed = me.committed_meta_embedding(name, results_dir or None)
    label = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}[name]
    if committed is None:
        display(Markdown(
            f"**Real {label}:** no committed table yet (`results/real/meta_embedding/"
            f"{name}.parquet`); compute it with `python -m fusion_utils.fusion.meta_embedding "
            f"real --dataset {name}` once two or more backbones' real BN features exist."))
        continue
    metrics, attention, prov = committed
    shown += 1
    display(Markdown(
        f"**Real {label}** (committed): {prov.get('n_records', '?'):,} records, "
        f"{prov.get('n_test', '?')} test; backbones {', '.join(prov.get('sources', []))}; "
        f"best single backbone on validation: `{prov.get('best_single')}` (with metadata: "
        f"`{prov.get('best_single_meta')}`); {prov.get('n_bootstrap')} bootstrap resamples. "
        f"Command: `{prov.get('command')}`; git commit `{prov.get('git_commit')}`; "
        f"{prov.get('seconds')} s on {prov.get('machine', {}).get('cores')} cores."))
    display(me.summary_table(metrics))
    display(Markdown(f"**Answer (real {label}):** " + me.answer(metrics) + " Balanced "
                     "accuracy: " + me.answer(metrics, "sensitivity")))
    fig = plot_attention_by_class(attention, title=f"real {label}, {prov.get('n_test')} test "
                                                   "records (committed)")
    plt.show()
print(f"{shown} committed real table(s) shown")

# %% [markdown]
# *Figure: attention per source per class on the real data.* The committed real table's
# attention received by each backbone (and the metadata token), per true class and DVME model,
# as in the figure above; one figure per dataset with a committed table (named in its title).
#
# ## Summary
#
# - The best single backbone, the concatenation and DVME are trained on the same cached BN
#   features and scored on the same test records with paired bootstrap CIs; the answer above
#   reads the paired differences: "better" only when the whole 95% interval is above zero.
# - DVME learns one attention weight per backbone and record; the figures show where it looks,
#   per class. Attention near 1 divided by the number of tokens means DVME weighs the backbones
#   about equally.
# - Small test sets give wide intervals: a combination that "looks" better by a point or two of
#   AUROC is usually not distinguishable from the best single backbone.
#
# ## Exercises
#
# 1. Use only two backbones (no extraction):
#    `fusion-book run 09_meta_embeddings out.ipynb -p extra_backbones efficientnet_lite1`
# 2. Give DVME more patience and a smaller learning rate. Do the attention weights change?
#    `fusion-book run 09_meta_embeddings out.ipynb -p patience 50 -p lr 0.00003`
# 3. Penalise the softmax baselines. Does the concatenation (or the best single backbone) close
#    the gap to DVME?
#    `fusion-book run 09_meta_embeddings out.ipynb -p l2 0.01`
#
# ```{admonition} Solutions
# :class: dropdown
# 1. With two sources DVME has two tokens, so equal attention is 0.5; the concatenation has half
#    the columns. Compare the paired differences to see whether the third backbone added
#    anything.
# 2. A smaller learning rate needs more epochs before the validation loss stops falling; the
#    `fits` table shows the epoch kept. Attention weights usually stay near equal when the
#    backbones carry similar information (the EfficientNet-Lite family shares its design).
# 3. An L2 penalty keeps the softmax weights finite on (nearly) separable features, much as
#    early stopping does for DVME; if the penalised baselines come close to DVME, its gain was
#    mostly regularisation rather than the learned combination of backbones.
# ```
