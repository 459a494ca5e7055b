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
# # Feature extraction: from images to the vector F(X)
#
# This chapter answers: **what does the network see, which vector does it hand to the
# classifier, and what does computing it cost?** The paper represents every image by
# $\mathcal{F}(X)$ (Eq. 1), the activations of the deepest layer before an ImageNet network's
# classification layer, either with the ImageNet weights unchanged (bottleneck features, *BN*) or
# after *fine-tuning* the network on the training images with a new classification layer (*FT*),
# each with or without the paper's augmentation (random shifts of up to 30 pixels along x and
# y, reflections, rotations of up to 90 degrees), which the paper applied to training *and* test
# images. Every image is resized bilinearly to the network's own input size (227 pixels for
# AlexNet and 299 for Inception-ResNet-v2, as in MATLAB; 224 for the others); PTB-XL montages
# are drawn at that size rather than resized from a 224-pixel montage.
#
# Parameters that change it: `dataset`, `data_dir`/`manifest_path` (the cohort; notebook 01
# writes the manifest), `backbone` (one of nine networks; `efficientnet_lite0` is the only one
# whose ImageNet weights are available offline), `weights`, `mode` (`bn` or `ft`), `augment`
# and `augment_splits` (every split, as in the paper, or the training split only), `epochs`,
# `batch_size` and `output_network` (fine-tuning), `device`, `precision` (`float32` or `bf16`),
# `max_images` and `seed`. Results are cached: a second run with the same parameters reads the
# features from disk.

# %% tags=["parameters"]
dataset: str = "ham10000"  # which cohort: "ptbxl" or "ham10000"
data_dir: str = ""  # dataset folder; empty: the demo cohort (used only to build a missing manifest)
manifest_path: str = ""  # manifest (parquet, notebook 01); empty: cache/manifests/<dataset>.parquet
run_dir: str = ""  # folder receiving features.npz; empty: runs/single/<dataset>
# backbone: efficientnet_lite0, alexnet, vgg16, vgg19, resnet50, densenet201, googlenet,
# mobilenet_v2, inception_resnet_v2
backbone: str = "efficientnet_lite0"  # CNN (one of the names above)
# weights: "imagenet" (supervised), "random", a saved state dict's path, or, for resnet50,
# self-supervised ImageNet weights "dino", "swav", "barlowtwins" or "mocov3" (torch.hub cache)
weights: str = "imagenet"  # "imagenet", "random", "dino", "swav", "barlowtwins", "mocov3", path
mode: str = "bn"  # "bn" (bottleneck: ImageNet weights as they are) or "ft" (fine-tuned first)
augment: bool = False  # the paper's augmentation (shifts, reflections, rotations)
# augment_splits: with augment, "train+test" (the paper; validation too) or "train" (training
# split only)
augment_splits: str = "train+test"  # with augment: "train+test" (the paper) or "train"
epochs: int = 2  # fine-tuning epochs (mode "ft" only)
batch_size: int = 0  # fine-tuning mini-batch; 0: the paper's (128 HAM10000, 64 PTB-XL)
# output_network: fine-tuned network kept, "last-iteration" (MATLAB R2021a, the paper's) or
# "best-validation-loss" (R2021b's option)
output_network: str = "last-iteration"  # "last-iteration" or "best-validation-loss"
device: str = "auto"  # "auto", "cpu" or "cuda"
precision: str = "float32"  # "float32" or "bf16" (bfloat16 arithmetic, float32 features)
max_images: int = 0  # use at most this many records, drawn per split and class; 0: all
seed: int = 0  # random seed (augmentation, new classification layer, shuffling)

# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from fusion_utils.data import manifest
from fusion_utils.features import backbones
from fusion_utils.features import extraction as features
from fusion_utils.features.augment import AugmentParams
from fusion_utils.features.datasets import ManifestImageDataset
from fusion_utils.features.finetune import PAPER_BATCH_SIZE
from fusion_utils.features.plots import (
    plot_augmented_views,
    plot_feature_pca,
    plot_finetune_history,
)
from fusion_utils.paths import check_dataset, resolve_data_dir
from fusion_utils.run_folder import RunFolder

t_start = time.perf_counter()
dataset = check_dataset(dataset)
path = manifest_path or manifest.default_manifest_path(dataset)
try:
    cohort = manifest.load_manifest(path)
except FileNotFoundError:  # notebook 01 has not run: build the manifest with its defaults
    folder = resolve_data_dir(dataset, data_dir)
    cohort, report = manifest.build_manifest(dataset, folder)
    manifest.save_manifest(cohort, path)
    print(f"built the missing manifest from {folder}:\n{report}")
cohort = features.subsample_manifest(cohort, max_images, seed=seed)
run = RunFolder.for_notebook(dataset, run_dir)
ft_batch = batch_size or PAPER_BATCH_SIZE[dataset]
display(Markdown(f"**Cohort:** `{dataset}`, {len(cohort)} records from `{path}`; "
                 f"run folder `{run.path}`."))
manifest.split_table(cohort)

# %% [markdown]
# ## The networks
#
# The registry holds the paper's eight networks and the book's default. The *feature layer* is
# the input of each network's final classification layer; its width is the number of image
# features that the classifiers of the next chapters receive. Only `efficientnet_lite0` has
# ImageNet weights that ship with a Python package; the others load them through torchvision or
# timm, which download them once (or find them in `$TORCH_HOME` / the Hugging Face cache) and
# fail with an error that says where the file is expected when the machine is offline.
#
# ImageNet weights need not come from labels. For `resnet50`, `weights` also takes the
# self-supervised checkpoints that {cite}`truong2021transferable` found to transfer better to
# medical images: `dino`, `swav`, `barlowtwins` (their official `torch.hub` entries) and `mocov3`
# (its official checkpoint). A reader with internet compares supervised and self-supervised BN
# features by changing this one parameter (`-p backbone resnet50 -p weights dino`); the file is
# downloaded once into the torch.hub cache, and offline without it the error names the file and
# the command that fetches it.

# %%
registry = pd.DataFrame([
    {"backbone": s.name, "library": s.library, "features": s.feature_dim,
     "input size": s.input_size, "feature layer": s.description}
    for s in map(backbones.backbone_spec, backbones.list_backbones())
]).set_index("backbone")
display(registry)

# %%
net = backbones.get_backbone(backbone, weights=weights)
summary = net.summary()
display(Markdown(
    f"**{backbone}** ({summary['weights']}): {summary['params_features']:,} parameters before "
    f"the classification layer, {summary['params_head']:,} in it; input "
    f"{summary['input_size']} x {summary['input_size']} pixels, normalised with mean "
    f"{np.round(summary['mean'], 3).tolist()} and standard deviation "
    f"{np.round(summary['std'], 3).tolist()}; F(X) has {summary['feature_dim']} dimensions."))

# %% [markdown]
# ## What the network sees
#
# Each row below is one training record: first the network input without augmentation (the
# whole image, resized bilinearly to the input size, so the aspect ratio changes), then three
# draws of the paper's augmentation. Corners rotated in from outside the image are black. The
# augmentation acts on the resized image, so the shifts are in pixels of the network input.

# %%
examples = ManifestImageDataset.for_backbone(cohort, net, augment=AugmentParams(), seed=seed)
train_rows = np.flatnonzero(cohort["split"].to_numpy() == "train")
firsts = pd.Series(train_rows, index=cohort["label"].to_numpy()[train_rows])
picks = firsts.groupby(level=0).first().to_numpy()[:4]
fig = plot_augmented_views(
    examples, picks, cohort["label"].iloc[picks].tolist(),
    title=f"{dataset}: network inputs ({net.input_size} px) and augmented views")
plt.show()

# %% [markdown]
# *Figure: network inputs of one training record per class (at most four classes): the input
# without augmentation, then three draws of the paper's augmentation.*
#
# ## Extracting the features
#
# `extract_features` runs the network over every record in batches (no gradients,
# channels-last memory layout) and keeps the result in a cache keyed by the manifest and every
# parameter above; an interrupted run resumes from its last finished chunk. With `mode="ft"` it
# first fine-tunes the network on the training split, as the paper did: the classification layer
# is replaced by one with an output per class, and stochastic gradient descent with momentum 0.9
# and learning rate $3\times10^{-4}$ trains every layer on mini-batches shuffled every epoch.
# The validation split is scored after every epoch; the network kept is the last epoch's, as
# MATLAB R2021a's `trainNetwork` returns it (`output_network="best-validation-loss"` keeps the
# best validated epoch instead, an option MATLAB added in R2021b). The settings the paper does
# not state are MATLAB's `trainingOptions` defaults, listed in {ref}`methods-finetuning`.

# %%
fs = features.extract_features(
    cohort, backbone=backbone, weights=weights, mode=mode,
    augment=augment_splits if augment else False, seed=seed, batch_size=batch_size or 32,
    device=device, precision=precision,
    ft_options={"epochs": epochs, "batch_size": ft_batch, "output_network": output_network},
)
info = fs.info
source = "read from the cache" if info["cache_hit"] else "computed"
rate = info.get("images_per_second")
display(Markdown(
    f"{len(fs)} feature vectors of dimension {fs.X.shape[1]} {source} "
    f"(`{info['cache_dir']}`). Extraction took {info['seconds']:.1f} s"
    + (f" ({rate:.1f} images/s on {info['device']})" if rate else "")
    + (f"; fine-tuning {info['ft_seconds']:.1f} s" if mode == "ft" else "") + "."))

# %% [markdown]
# ## Fine-tuning curves
#
# With `mode="ft"` the figure shows the training loss (mean over each epoch's mini-batches, with
# the network in training mode) and the validation loss and accuracy after each epoch; the epoch
# marked with a circle is the one whose weights produce the features (the last, unless
# `output_network="best-validation-loss"`). With `mode="bn"` there is
# nothing to show: the ImageNet weights are used as they are.

# %%
if mode == "ft":
    history = pd.DataFrame(info["ft_history"])
    fig = plot_finetune_history(history, kept_epoch=info["ft_best_epoch"])
    plt.show()
    display(history.round(4))
else:
    print("mode='bn': no fine-tuning")

# %% [markdown]
# *Figure (with `mode="ft"` only): training and validation loss per epoch (left; the circled
# epoch's network produces the features) and validation accuracy (right).*
#
# ## The features in two dimensions
#
# A principal component analysis of the standardised features (fitted on all records) gives a
# first look at whether the classes separate. Overlap here does not mean that a classifier will
# fail: the softmax classifier of the next chapter uses all dimensions, not the two with the most
# variance.

# %%
fig = plot_feature_pca(fs.X, fs.labels, fs.split, classes=cohort.attrs.get("classes"),
                       seed=seed, title=f"{dataset}: {backbone} {mode.upper()} features"
                       + (" with augmentation" if augment else ""))
plt.show()

# %% [markdown]
# *Figure: the standardised features of every record on their first two principal components;
# colour is the class, marker the split, and the axis labels give each component's share of
# the variance.*
#
# ## Timings and output
#
# The table lists the time of each stage of the run that computed the features (a cache hit
# costs only the file read). `features.npz` in the run folder is what the fusion chapter reads.

# %%
out_path = run.write_features(fs)
timings = {
    "fine_tuning_s": info.get("ft_seconds", 0.0),
    "extraction_s": info["seconds"],
    "images_per_second": rate,
    "cache_hit": info["cache_hit"],
    "notebook_s": time.perf_counter() - t_start,
    "device": info["device"],
    "threads": torch.get_num_threads(),
}
timings_path = run.write_feature_timings(timings)
run.record("features", {
    "backbone": backbone, "weights": weights, "weights_tag": info.get("weights"), "mode": mode,
    "augment": info.get("augment", augment), "epochs": epochs if mode == "ft" else None,
    "batch_size": batch_size, "ft_batch_size": ft_batch if mode == "ft" else None,
    "precision": precision, "max_images": max_images, "seed": seed, "device": info["device"],
    "n_records": len(fs), "feature_dim": int(fs.X.shape[1]),
}, dataset=dataset, manifest_path=path)
display(pd.Series(timings, name="value").to_frame())
print(f"wrote {out_path}, {timings_path} and {run.run_json}")

# %% [markdown]
# ## Summary
#
# - F(X) is the input of the network's final classification layer: 1280 numbers per image for
#   `efficientnet_lite0`, from 1024 (`googlenet`) to 4096 (`alexnet`, `vgg16`, `vgg19`) for the
#   paper's networks.
# - Bottleneck features need one forward pass per image; fine-tuning adds training passes over
#   the training split, so it costs more than extraction even at two epochs.
# - The paper's augmentation changes every image, test images included; with `augment=True`
#   each record's features come from one randomly shifted, reflected and rotated view (the
#   validation split goes with the test split; `augment_splits="train"` augments only the
#   training images). Fine-tuning draws new views of the training images every epoch.
# - Fine-tuning returns the last epoch's network, as MATLAB R2021a does.
# - Everything is cached under `cache/features` (and fine-tuned networks under
#   `cache/checkpoints`), keyed by every parameter that changes the numbers.
#
# ## Exercises
#
# 1. Fine-tune for more epochs. Does the validation loss keep falling? Which epoch would R2021b's
#    best-validation option keep (`-p output_network best-validation-loss`)?
#    `fusion-book run 03_feature_extraction out.ipynb -p mode ft -p epochs 6`
# 2. Extract features with augmentation and compare the PCA figure with the one above.
#    `fusion-book run 03_feature_extraction out.ipynb -p augment True`
# 3. Extract in bfloat16 and compare the time and the features with float32.
#    `fusion-book run 03_feature_extraction out.ipynb -p precision bf16`
# 4. Try a network with random weights to see what ImageNet pretraining contributes.
#    `fusion-book run 03_feature_extraction out.ipynb -p backbone resnet50 -p weights random`
#
# ```{admonition} Solutions
# :class: dropdown
# 1. On the small demo cohort the training loss keeps falling while the validation loss soon
#    flattens or rises. The paper's MATLAB release keeps the last epoch whatever the validation
#    loss does, so an overfitted network reaches the classifiers; the best-validation option
#    keeps the epoch with the lowest validation loss instead.
# 2. Augmented views scatter each class more widely (the network sees rotated and shifted
#    images with black corners), so the classes overlap more in the first two components; the
#    paper found augmentation helped some networks and hurt others.
# 3. On CPUs with bfloat16 instructions (AVX512-BF16 or AMX) the forward pass runs faster; the
#    features stay within a cosine similarity of 0.999 of float32 (tested), so the classifiers
#    of the next chapters give the same results up to small differences.
# 4. With random weights the features carry little more than colour and texture statistics:
#    the classes overlap in the PCA figure and the next chapter's image-only classifier is
#    weaker, which is the gap that transfer learning closes.
# ```
