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
# # Interpretability: what do the classifier's weights say, and can we trust that reading?
#
# The paper (Sec. III.E) reads the weights of the softmax classifier. The first columns of the
# fused input multiply the CNN's image features, the last ones the metadata, so the weight
# matrix splits into an image block and a metadata block. Its Fig. 5 shows that the image
# weights shrink by "up to three orders of magnitude" when metadata join and that the metadata
# weights separate the classes (sex matters for STTC and CD, Device and Nurse hint at bias);
# its Fig. 6 shows that the metadata weights look alike whatever CNN produced the image
# features. This chapter reproduces both figures and the shrinkage ratio. It then reads the
# same classifier in three scale-aware ways, because **a raw weight mixes how much an input
# matters with the unit it is measured in**: an age near 60, a year near 1990 and a CNN
# activation near 1 need very different weights to move a logit by the same amount.
#
# Parameters that change this chapter: `dataset`, `run_dirs` (which run folders to read; empty:
# every run of the book grid for this dataset), `main_run` (the run shown in Fig. 5 and analysed
# in depth), `manifest_path` (the cohort manifest the runs were built from), `n_repeats`,
# `n_bootstrap` and `seed`.

# %% tags=["parameters"]
dataset: str = "ptbxl"  # which cohort: ptbxl or ham10000
run_dirs: str = ""  # comma-separated run folders; empty: every run under runs/book for this dataset
# main_run: run for Fig. 5 and the in-depth analysis (folder or its name); empty: the FT run
# with augmentation, else the first
main_run: str = ""  # run for Fig. 5 and the in-depth analysis; empty: see above
manifest_path: str = ""  # manifest of the runs; empty: cache/manifests/<dataset>.parquet
n_repeats: int = 10  # permutations per column for the permutation importance
n_bootstrap: int = 200  # bootstrap resamples of the test split for the ablation intervals
seed: int = 0  # seed of the permutations and of the bootstrap

# %%
import dataclasses
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from fusion_utils import interpret
from fusion_utils.data.manifest import class_order, default_manifest_path, load_manifest
from fusion_utils.fusion.softmax import SoftmaxClassifier
from fusion_utils.fusion.train import default_run_dir
from fusion_utils.interpret import plots as interpret_plots
from fusion_utils.paths import check_dataset, project_root, runs_dir

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.precision", 3)

dataset = check_dataset(dataset)
classes = list(class_order(dataset))
if str(run_dirs).strip():
    runs = [Path(r.strip()) if Path(r.strip()).is_absolute() else project_root() / r.strip()
            for r in run_dirs.split(",") if r.strip()]
else:
    runs = interpret.find_runs(runs_dir("book"), classes=classes)
    if not runs and (default_run_dir(dataset) / "classifier_fused.npz").is_file():
        runs = [default_run_dir(dataset)]
if not runs:
    raise FileNotFoundError(
        f"no {dataset} run folder with classifier_fused.npz under {runs_dir('book')}: run the book "
        "grid (python -m fusion_utils.experiments run experiments/book.yaml) or notebooks 03-04, "
        "or pass run_dirs")
loaded = [interpret.load_run(r) for r in runs]
labels = [r.label for r in loaded]
if len(set(labels)) < len(labels):  # two runs with the same description: add the folder name
    loaded = [dataclasses.replace(r, label=f"{r.label} ({r.run_dir.name})") for r in loaded]


main = interpret.pick_main_run(loaded, main_run)
overview = pd.DataFrame([{
    "run": r.label, "folder": r.run_dir.name,
    "image features": int(interpret.image_mask(r.fused.feature_names).sum()),
    "metadata inputs": ", ".join(r.fused.blocks.meta_names),
    "main": "yes" if r is main else ""} for r in loaded])
display(overview)
display(Markdown(f"**Main run:** {main.label} (`{main.run_dir}`)."))
glue("data_label", f"{'PTB-XL' if dataset == 'ptbxl' else 'HAM10000'}, main run {main.label} "
     f"({len(loaded)} run(s) read)", display=False)

# %% [markdown]
# ## Fig. 5: the weights, image-only vs fused
#
# For each class (column), the top row shows the distribution of the image-feature weights of
# the classifier trained on the image features alone; the middle row the image-feature weights
# of the classifier trained on image features plus metadata; the bottom row that classifier's
# metadata weights. The paper's figure is VGG16 fine-tuned on PTB-XL with augmentation; the
# main run here is the closest configuration in the grid.

# %%
fig = interpret_plots.plot_fig5(main.image, main.fused, title=f"{dataset}: {main.label}")
glue("fig_interp_fig5", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_interp_fig5
#
# Fig. 5 reproduced for {glue:text}`data_label`: classifier weights per class. Rows:
# image-feature weights without metadata, image-feature weights with metadata, metadata weights
# (raw, as the paper plots them). Each histogram is annotated with its median |weight|; note the
# different x-axes of the first two rows.
# ```
#
# ## How much do the image weights shrink?
#
# The paper reports a reduction of one to three orders of magnitude. Here is the ratio of the
# median |weight| of the image features, image-only over fused, for every run and (main run)
# per class; `orders_of_magnitude` is its base-10 logarithm.

# %%
scale_rows = []
for r in loaded:
    t = interpret.weight_scale_table(r.image, r.fused)
    scale_rows.append(t[t["class"] == "all"].assign(run=r.label))
scale_all = pd.concat(scale_rows, ignore_index=True)[
    ["run", "median_abs_image_only", "median_abs_fused", "median_abs_metadata", "ratio",
     "orders_of_magnitude"]]
display(scale_all)
scale_main = interpret.weight_scale_table(main.image, main.fused)
display(scale_main)
ratio = float(scale_main.loc[scale_main["class"] == "all", "ratio"].iloc[0])
display(Markdown(interpret.weight_ratio_summary(ratio, scale_all["ratio"])))

# %% [markdown]
# ## Fig. 6: are the metadata weights the same whatever the image features?
#
# The paper finds the metadata weights "similar for all the networks", which would mean the
# metadata contribute in a way that does not depend on the CNN. Rows are classes, columns runs
# (backbones, and BN/FT and augmentation where the grid varies them).

# %%
meta_frames = pd.concat([interpret.weights_frame(r.fused, "fused").assign(run=r.label)
                         for r in loaded], ignore_index=True)
backbones = sorted({str(r.info.get("backbone", r.label)) for r in loaded})
if len(loaded) > 1:
    fig = interpret_plots.plot_fig6(meta_frames, value="weight")
    if len(backbones) == 1:
        display(Markdown(
            f"*All runs here use one backbone ({backbones[0]}), so this figure compares the "
            "grid's configurations (BN vs FT, with and without augmentation) rather than CNNs; "
            "run the paper's grid (`experiments/paper.yaml`) for the backbone comparison.*"))
else:
    fig = interpret_plots.note_figure(
        "Only one run is available, so Fig. 6 (metadata weights across backbones) cannot be "
        "drawn: pass several run folders in run_dirs, or run the book grid.")
glue("fig_interp_fig6", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_interp_fig6
#
# Fig. 6 reproduced, when several runs exist ({glue:text}`data_label`): raw metadata weights of
# the fused classifier, per class (rows) and run (columns).
# ```
#
# A number for "similar": the correlation between runs of the class-by-metadata weight matrix,
# raw and standardised (1 means the same pattern up to scale).

# %%
def _pattern(r: interpret.RunWeights, std: bool) -> np.ndarray:
    m = ~interpret.image_mask(r.fused.feature_names)
    w = r.fused.standardised if std else r.fused.coef
    return w[:, m].ravel()


same_inputs = len({tuple(r.fused.blocks.meta_names) for r in loaded}) == 1
if len(loaded) > 1 and same_inputs:
    corr = {}
    for std in (False, True):
        mats = np.array([_pattern(r, std) for r in loaded])
        c = np.corrcoef(mats)
        corr["standardised" if std else "raw"] = float(
            np.nanmean(c[np.triu_indices(len(loaded), 1)]))
    display(pd.Series(corr, name="mean pairwise correlation between runs").to_frame())
else:
    print("needs at least two runs with the same metadata inputs")

# %% [markdown]
# ## The scale-aware view
#
# ### 1. Standardised weights
#
# A weight $w_{kj}$ is the change in class $k$'s logit per **unit** of input $j$. Multiplying it
# by the input's standard deviation on the training split, $w_{kj} s_j$, gives the change per
# **typical variation** of the input, which no longer depends on the unit (years or days,
# kilograms or grams). The input scales of the fused classifier:

# %%
std = main.fused.feature_std
mask_img = interpret.image_mask(main.fused.feature_names)
scales = pd.Series(std[~mask_img], index=main.fused.feature_names[~mask_img], name="std on train")
scales["image features (median)"] = float(np.median(std[mask_img]))
display(scales.to_frame())
display(interpret.block_summary({"image only": main.image, "fused": main.fused}))

# %% [markdown]
# The inputs with the largest raw weights in the fused classifier, with the spread of each
# input and its standardised weight (largest over classes):

# %%
absw = np.nanmax(np.abs(main.fused.coef), axis=0)
top = np.argsort(-absw)[:8]
display(pd.DataFrame({
    "input": main.fused.feature_names[top], "max |weight|": absw[top], "std on train": std[top],
    "max |standardised weight|": np.nanmax(np.abs(main.fused.standardised), axis=0)[top]}))

# %%
fig = interpret_plots.plot_raw_vs_standardised(main.fused)
glue("fig_interp_raw_std", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_interp_raw_std
#
# Metadata weights of the fused classifier per class, raw (left) and standardised (middle), and
# the median |weight| of each block on both scales (right, log axis); {glue:text}`data_label`.
# ```
#
# Fig. 5 redrawn with standardised weights (each weight times its input's standard deviation):

# %%
std_image = dataclasses.replace(main.image, coef=main.image.standardised)
std_fused = dataclasses.replace(main.fused, coef=main.fused.standardised)
fig = interpret_plots.plot_fig5(std_image, std_fused, title=f"{main.label}: standardised weights")
glue("fig_interp_fig5_std", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_interp_fig5_std
#
# As Fig. 5, with every weight multiplied by its input's standard deviation on the training
# split; {glue:text}`data_label`.
# ```
#
# ### 2. Permutation importance and 3. drop-column ablation
#
# Weights, raw or standardised, describe the model; they do not say how much the test
# predictions depend on an input. Two direct measures on the test split:
#
# - **permutation importance**: shuffle one metadata column across test records (all inputs
#   derived from it together, e.g. the six parts of a date) and record the drop in macro
#   AUROC of the fitted classifier; the whole image block is shuffled as one group for scale;
# - **drop-column ablation**: refit the classifier without the column and record the loss in
#   macro AUROC, with a paired bootstrap interval. A column whose information other columns
#   also carry can matter to the fitted model yet cost nothing to drop.
#
# Both need the fused input matrix, which the run folder does not store: it is rebuilt from
# the run's features and the cohort manifest and checked against the run's own predictions.

# %%
mpath = Path(manifest_path) if str(manifest_path).strip() else default_manifest_path(dataset)
perm = ablation = data = None
try:
    data = interpret.load_fused_data(main.run_dir, load_manifest(mpath), fused=main.fused)
except (FileNotFoundError, KeyError, ValueError) as exc:
    display(Markdown(f"*The fused matrix could not be rebuilt ({exc}); permutation importance "
                     "and ablation are skipped. Pass `manifest_path`.*"))
if data is not None:
    print(f"rebuilt {data.X.shape[0]} x {data.X.shape[1]} fused matrix from {mpath} "
          f"(encoding {data.encoding!r}); largest difference from the stored predictions: "
          f"{data.max_abs_diff:.1e}")
    groups = interpret.feature_groups(data.feature_names, data.metadata_columns)
    groups_all = {
        "image features (all)": list(np.flatnonzero(interpret.image_mask(data.feature_names))),
        **groups}
    test, train = data.split == "test", data.split == "train"
    perm = interpret.grouped_permutation_importance(
        main.fused, data.X[test], data.labels[test], groups_all, classes=main.fused.classes,
        n_repeats=n_repeats, seed=seed)
    params = interpret.run_parameters(main.run_dir, "fusion")
    clf = SoftmaxClassifier(**{k: params[k] for k in ("l2", "standardize", "max_epochs", "tol")},
                            solver=params.get("solver", "lbfgs"))  # the run's own training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unpenalised refits on separable data may stop early
        ablation = interpret.drop_column_ablation(
            clf, data.X[train], data.labels[train], data.X[test], data.labels[test], groups_all,
            n_bootstrap=n_bootstrap, seed=seed)
    display(perm)
    display(ablation)
    fig = interpret_plots.plot_importance(perm, ablation)
else:
    fig = interpret_plots.note_figure("The fused matrix could not be rebuilt: permutation "
                                      "importance and ablation are skipped.")
glue("fig_interp_importance", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_interp_importance
#
# Left, the drop in test macro AUROC when a column (or the whole image block) is shuffled, mean
# and standard deviation over the permutations; right, the macro AUROC lost when the classifier
# is refitted without it, with a 95% paired (stratified) bootstrap interval;
# {glue:text}`data_label`. Bars near zero: the input does not matter to the test predictions.
# ```
#
# ## Where the readings agree and where they differ

# %%
reading = interpret.reading_comparison(
    main.fused, perm[perm["feature"] != "image features (all)"] if perm is not None else None,
    ablation[ablation["feature"] != "image features (all)"] if ablation is not None else None,
    columns=list(interpret.feature_groups(main.fused.feature_names)))
display(reading)
display(Markdown(interpret.reading_summary(reading, perm)))

# %% [markdown]
# **Reading the two views in plain words.** The paper's reading takes a large weight for an
# important input. That holds only when the inputs share a scale, and the fused inputs do not:
# CNN features are activations of order 1, age is about 60, height about 170 (or -1 when
# missing), a recording year about 1990, sex 0 or 1. A weight of 0.01 on age moves a logit by
# about 0.15 across one standard deviation of age (15 years); the same weight on a 0/1 column
# moves it by at most 0.01. The same holds inside the image block: the largest raw weights
# often belong to CNN features that barely vary on the training split (a feature that is
# almost constant can take a huge weight at almost no effect on any prediction), which the
# table of the largest weights above shows. So among metadata columns raw weights favour the
# small-scale ones
# (sex, category indices) and penalise the large-scale ones (age, height, year). Between the
# blocks, the image block has hundreds to thousands of correlated features that share the
# work, so each weight is small even when the block as a whole matters; the permutation row
# "image features (all)" measures the block as one. Where the raw and standardised columns of
# the table above disagree, the difference is units, not importance; where the weights and the
# permutation or ablation scores disagree, the difference is between what the model uses and
# what the test predictions need. The paper's qualitative conclusions (metadata discriminate
# classes; acquisition columns can encode bias) are best checked with the last two, and
# chapter 07 measures the bias directly on the full real tables. Finally, how much the image
# weights shrink depends on the optimiser as well as on the data. With unscaled inputs, a plain
# gradient method takes steps dominated by the largest inputs (age, a year), and stopping it
# after a fixed budget leaves the other weights wherever they were; this book's solver is
# preconditioned and stops near the optimum (`fusion_utils.fusion.softmax`). Where the ratio here
# stays near 1, that does not contradict the paper's figure; it suggests that the shrinkage is
# a property of how the classifier was trained rather than of the optimum itself.
#
# ## Summary
#
# - Fig. 5 and the median-|weight| ratio test the paper's "one to three orders of magnitude"
#   on the book's runs; Fig. 6 and the correlation between runs test whether the metadata
#   weights are the same whatever the image features.
# - Raw weights on unscaled inputs confound importance with units; standardised weights
#   remove the units, and permutation importance and ablation measure importance on the test
#   split directly.
# - On the demo cohort these numbers show that the analysis runs, not facts about PTB-XL or
#   HAM10000.
#
# %% [markdown]
# ## Is the shrinkage in the data or in the training?
#
# The paper's classifier is MATLAB's `trainSoftmaxLayer`: scaled conjugate gradient stopped
# after 2000 epochs (or when the gradient falls below 1e-6), on unpenalised cross-entropy, with
# raw metadata. With no penalty and nearly separable features the loss has no finite minimum, so
# where the optimiser stops decides the weights, and with it the ratio above. Here the image-only
# and the fused classifier of the main run are refitted on its training rows in four set-ups:
# the paper's training (`SoftmaxClassifier(solver="trainscg")`, a transcription of MATLAB's
# `trainscg`) and the book's converged classifier, each with raw and with standardised
# (z-scored) metadata (`fusion_utils.interpret.shrinkage`). The conclusion below is computed
# from the table.

# %%
from fusion_utils.interpret.shrinkage import shrinkage_conclusion, shrinkage_table

if data is None:
    display(Markdown("*The fused matrix could not be rebuilt, so the set-ups cannot be refitted.*"))
else:
    train = data.split == "train"
    run_l2 = float(params.get("l2", 0.0))  # the run's classifier parameters (cell above)
    shrink = shrinkage_table(data.X, data.labels, data.feature_names, train=train, l2=run_l2)
    display(shrink)
    display(Markdown(
        f"On {dataset} (manifest `{mpath.name}`), main "
        f"run {main.label}, {int(train.sum())} training records, "
        f"{int(interpret.image_mask(data.feature_names).sum())} image features and "
        f"{len(data.feature_names) - int(interpret.image_mask(data.feature_names).sum())} "
        f"metadata inputs (converged set-ups with the run's l2 = {run_l2:g}): "
        + shrinkage_conclusion(shrink)))

# %% [markdown]
# ### The same question on the real data
#
# Refitting the four set-ups on the real runs takes minutes (HAM10000: 7,011 training images),
# so they were computed once with `python -m fusion_utils.interpret.shrinkage real` on the real
# grid's BN runs of `efficientnet_lite0` (`runs/real/`) and committed in
# `results/real/shrinkage.parquet`; every edition shows that table here.

# %%
from fusion_utils.interpret.shrinkage import committed_shrinkage

real_shrink = committed_shrinkage()
if real_shrink is None:
    print("No committed real-data shrinkage table (results/real/shrinkage.parquet): run "
          "python -m fusion_utils.interpret.shrinkage real")
else:
    for run_id, block in real_shrink.groupby("run", sort=False):
        display(Markdown(f"**{run_id}** (real data, {int(block['n_train'].iloc[0])} training "
                         f"records): {block['conclusion'].iloc[0]}"))
    display(real_shrink[["run", "setup", "median_abs_image_only", "median_abs_fused", "ratio",
                         "epochs_image_only", "epochs_fused", "stop_fused"]])

# %% [markdown]
# ## Exercises
#
# 1. Draw Fig. 5 for the frozen-feature run without augmentation instead:
#
#    ```bash
#    fusion-book run 06_interpretability interp_bn.ipynb \
#        -p main_run ptbxl-efficientnet_lite0-bn-noaug
#    ```
#
#    Does the shrinkage of the image weights depend on the configuration?
#
# ````{admonition} Solution
# :class: dropdown
# The table of all runs already gives the `ratio` for every configuration, so the answer is in
# either notebook; `main_run` changes Fig. 5, the standardised view, the permutation
# importance and the ablation. Whether BN or FT features shrink more depends on how separable
# the training features are: with many more features than training records the unpenalised
# classifier can separate the classes with the image block alone, and its weights then depend
# on where the optimiser stopped.
# ````
#
# 2. The same for HAM10000, whose metadata are age, sex and localization:
#
#    ```bash
#    fusion-book run 06_interpretability interp_ham.ipynb \
#        -p dataset ham10000
#    ```
#
#    Which metadata column has the largest raw weight, and which the largest permutation
#    importance?
#
# ````{admonition} Solution
# :class: dropdown
# With the paper's encoding, `localization` is a category index (0, 1, 2, ... in alphabetical
# order), so its raw weight is tied to an arbitrary numbering; `sex` is 0/1 and `age` of order
# 50. Read the reading-comparison table: the ranks by raw weight and by permutation importance
# typically disagree, and chapter 07 shows that one-hot encoding makes `localization` far more
# useful to a linear model.
# ````
#
# 3. Show by hand that a standardised weight does not depend on units: refit the fused
#    classifier of the main run with age in months instead of years (multiply the age column
#    of `data.X` by 12) and compare `coef_` and `coef_ * X.std(axis=0)` for age.
#
# ````{admonition} Solution
# :class: dropdown
# ```python
# from fusion_utils.fusion.softmax import SoftmaxClassifier
# j = list(data.feature_names).index("age")
# tr = data.split == "train"
# X2 = data.X.copy()
# X2[:, j] *= 12  # age in months
# fit = lambda X: SoftmaxClassifier(l2=1e-3, standardize=True).fit(X[tr], data.labels[tr])
# a, b = fit(data.X), fit(X2)
# print(a.coef_[:, j] / b.coef_[:, j])  # 12 for every class: the raw weight follows the unit
# print(a.coef_[:, j] * data.X[tr, j].std() - b.coef_[:, j] * X2[tr, j].std())  # ~0
# ```
# `standardize=True` makes the penalty act on standardised weights, so the penalised optimum
# moves with the unit exactly; with the paper's `l2=0` the same holds at a unique, converged
# optimum (`tests/test_interpret.py` checks it with a factor of 1000), but on separable image
# features the unpenalised fit has no unique optimum.
# ````
