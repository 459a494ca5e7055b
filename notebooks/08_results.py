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
# # Results across the grid: which of the paper's findings reproduce?
#
# The paper is a grid of experiments: two datasets, eight ImageNet networks, frozen
# ("bottleneck", BN) or fine-tuned (FT) features, with and without augmentation, and for each
# configuration a softmax classifier on the image features alone and one on the image features
# fused with the patient's metadata. This chapter reads the results of every configuration of a
# grid run by `python -m fusion_utils.experiments`, draws the paper's Figs. 2-4 across the whole
# grid, and checks the paper's findings (Sections III.B-D) one by one, marking each **reproduced**,
# **not reproduced** or **not testable on this grid**.
#
# By default it shows the book's grid (`experiments/book.yaml`: both datasets, the offline
# `efficientnet_lite0` backbone, BN and FT, with and without augmentation) run on the synthetic
# demo cohort. Parameters that change it: `runs_dir` or `results_path` (another grid's results),
# `paper_runs_dir` (your run of the full `experiments/paper.yaml` grid on the real data, shown
# in a second part when present), `dataset` (one dataset only) and `tol` (how many percentage
# points count as "unchanged").
#
# ```{warning}
# The demo cohort is synthetic: its metadata were generated to relate to the labels in a made-up
# way, and its images and ECGs are simulated. A finding "reproduced" on it shows that the
# pipeline computes the paper's comparison end to end, not that the paper's science holds. Only
# the full grid on the real PTB-XL and HAM10000 data can test the science.
# ```

# %% tags=["parameters"]
results_path: str = ""  # parquet file written by grid collect; empty: collect runs_dir now
runs_dir: str = ""  # runs folder of the grid to show; empty: runs/book, the book grid
paper_runs_dir: str = ""  # full paper grid; empty: runs/paper if it has completed runs; none: skip
dataset: str = ""  # one dataset only (ptbxl or ham10000); empty: both
tol: float = 0.5  # percentage points within which a change counts as unchanged
# resolution_data_dir: HAM10000 folder with images/ and images_200x150/ for the resolution
# comparison; empty: skip
resolution_data_dir: str = ""  # HAM10000 folder with both image sizes; empty: skip
# resolution_run_dir: run folder whose classifier_image.npz predicts the classes (trained on
# 200x150 features); empty: cosines only
resolution_run_dir: str = ""  # run folder with classifier_image.npz; empty: cosines only
# real_results_path: the committed results of the real grid, shown in their own section when
# the chapter's main table is another grid's; empty: results/real/results.parquet; none: skip
real_results_path: str = ""  # committed real-grid results; empty: results/real; none: skip

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from fusion_utils.evaluation import plots as eval_plots
from fusion_utils.experiments import findings as grid_findings
from fusion_utils.experiments import real_edition
from fusion_utils.experiments import results as grid_results
from fusion_utils.paths import check_dataset, project_root
from fusion_utils.paths import runs_dir as default_runs_dir

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.precision", 3)
pd.set_option("display.max_colwidth", 120)


results = grid_results.load_results(results_path, runs_dir, default_runs_dir("book"))
if dataset:
    results = results[results["dataset"] == check_dataset(dataset)]
if results.empty:
    raise RuntimeError("no completed configuration to show: run the grid first, e.g. "
                       "python -m fusion_utils.experiments run experiments/book.yaml")
configs = (results.drop_duplicates("config_id")
           [["config_id", "dataset", "backbone", "weights", "mode", "augment", "epochs"]]
           .reset_index(drop=True))
display(configs)
grids = ", ".join(sorted(map(str, results["grid"].dropna().unique())))
provenance = real_edition.read_provenance(results_path) if str(results_path) else None
data_label = (f"grid {grids}: {len(configs)} configuration(s)"
              + (" on the synthetic demo cohort" if grids == "book" else "")
              + (f" on {real_edition.cohort_sentence(provenance)}" if provenance else ""))
glue("data_label", data_label, display=False)
print(data_label)

# %% [markdown]
# Where these results come from: a table collected from run folders now (the demo edition), or
# the committed table of a grid run once (the real edition: `results/real/results.parquet`,
# written by `python -m fusion_utils.experiments.real_edition collect`), whose provenance file
# records the command, the git commit, the data checksums, the machine and the time each
# configuration took. The book build re-computes part of it and fails when they disagree.

# %%
if provenance:
    display(Markdown(real_edition.provenance_markdown(provenance)))
else:
    print(f"Collected now from the run folders of grid {grids} (no provenance file).")
print(f"Macro AUROC and balanced accuracy (macro mean of the per-class sensitivity) on the test "
      f"split, image-only vs fused, for {data_label}:")
real_edition.headline_table(results).round(3)

# %% [markdown]
# Each row of the configuration table is one configuration of the grid that completed; its run
# folder (`runs/<grid>/<config_id>/`) holds the executed feature-extraction, fusion and evaluation
# notebooks, which the book shows for one configuration per dataset in the earlier chapters. The
# results table has one row per configuration, metric, class (or `macro_mean`/`macro_std`) and
# model (`image` or `fused`); its columns are documented in `fusion_utils.experiments.results`.
#
# ## Figs. 2 and 3: the improvement from metadata, metric by metric
#
# The paper's Figs. 2 (HAM10000) and 3 (PTB-XL) show, for each network and set-up, the macro
# average of each metric with metadata minus without, in percentage points: a score of 70%
# without and 80% with metadata is plotted as +10. {numref}`fig-results-improvement` redraws
# them for every configuration of the grid.

# %%
TITLES = {"ham10000": "HAM10000 (Fig. 2)", "ptbxl": "PTB-XL (Fig. 3)"}


macro = grid_findings.label_configurations(grid_findings.improvements(results))
datasets = list(dict.fromkeys(macro["dataset"]))
n_cols = macro.groupby("dataset")["configuration"].nunique().max()
fig, axes = plt.subplots(1, len(datasets), squeeze=False,
                         figsize=(len(datasets) * (2.6 + 1.0 * n_cols), 4.4))
limit = max(1.0, float(macro["improvement"].abs().max()))
for ax, d in zip(axes[0], datasets, strict=True):
    eval_plots.improvement_heatmap(macro[macro["dataset"] == d], ax=ax, title=TITLES.get(d, d),
                                   limit=limit)
glue("fig_results_improvement", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_results_improvement
# :name: fig-results-improvement
#
# Improvement in macro-averaged performance from adding metadata, the paper's Figs. 2
# (HAM10000) and 3 (PTB-XL), for {glue:text}`data_label`. Rows are the nine metrics, columns the
# configurations (network, BN or FT, "aug" when trained or extracted with augmentation); blue
# cells gain with metadata, red cells lose. On the demo cohort the sizes of the gains reflect
# how strongly the synthetic metadata were made to depend on the labels, not the real data.
# ```
#
# The same numbers as a table, with the image-only and fused scores for three metrics:

# %%
scores = (macro[macro["metric"].isin(["accuracy", "f1", "auroc"])]
          .pivot_table(index=["dataset", "configuration"], columns="metric",
                       values=["image", "fused", "improvement"])
          .swaplevel(axis=1).sort_index(axis=1, level=0))
scores.round(3)

# %% [markdown]
# ## Fig. 4: class-wise AUROC improvement and its significance
#
# For each class, the AUROC of the fused classifier minus that of the image-only classifier on
# the same test images. As in the paper's figure, each box holds, for one class and one set-up
# (BN/FT, with or without augmentation), one such difference per network; a paired test across
# the networks (Wilcoxon's signed-rank test, `significance.across_networks_test`; the paper does
# not name its test) marks the box: \*\* for $p \le 0.05$, \* for $p \le 0.10$
# ({numref}`fig-results-auroc`). With one network a box is one point and has no test; DeLong's
# per-configuration test is in the evaluation chapter.

# %%
classwise = grid_findings.label_configurations(grid_findings.class_improvements(results, "auroc"))
fig, axes = plt.subplots(1, len(datasets), squeeze=False, sharey=True,
                         figsize=(len(datasets) * (2.6 + 1.3 * n_cols), 4.4))
for ax, d in zip(axes[0], datasets, strict=True):
    eval_plots.auroc_improvement_boxplot(classwise[classwise["dataset"] == d], ax=ax,
                                         title={"ham10000": "(a) HAM10000",
                                                "ptbxl": "(b) PTB-XL"}.get(d, d))
glue("fig_results_auroc", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_results_auroc
# :name: fig-results-auroc
#
# Class-wise AUROC improvement from metadata, the paper's Fig. 4, for {glue:text}`data_label`.
# Each dot is one network; each box one class (x axis) and set-up (colour). Positive values mean
# the fused classifier separates that class better than the image-only one; stars mark the boxes
# whose differences are significant by Wilcoxon's signed-rank test across networks
# (\*\* $p \le 0.05$, \* $p \le 0.10$).
# ```
#
# ## The paper's findings, point by point
#
# Every headline claim of the paper (its abstract, Section III and conclusion) is coded in
# `fusion_utils.experiments.findings` as a check on the results table; the tests there give each
# finding a hand-made table where it holds and one where it fails. "Not testable" means the grid
# lacks the datasets, networks, set-ups or columns the finding is about: the book grid has one
# network, so the findings about AlexNet, VGG16, VGG19 and the four networks that gain most
# cannot be tested on it. The significance of the gain uses the paired Wilcoxon test across
# networks when a set-up has at least six networks (fewer cannot reach $p \le 0.05$), else the
# per-configuration DeLong p-values, and says which. The shrinkage of the image weights and the
# cost of the fused classifier need per-configuration columns (`image_weight_ratio`; fit,
# extraction and fine-tuning seconds) that the results table does not carry yet, and the
# verdict names them.
# Configurations whose image-only classifier is already perfect are left out of the checks:
# metadata cannot improve them, and counting their zero improvements would decide comparisons
# by a ceiling rather than by the data.

# %%
findings = grid_findings.evaluate_findings(results, tol=tol)
display(Markdown(grid_findings.findings_markdown(findings)))
counts = findings["status"].value_counts()
print(", ".join(f"{counts.get(s, 0)} {s}" for s in grid_findings.STATUSES))
if findings.attrs["excluded"]:
    print("left out of the checks, the image-only classifier being already perfect (accuracy "
          "and AUROC >= 0.999, nothing for metadata to improve): "
          + ", ".join(findings.attrs["excluded"]))

# %% [markdown]
# On the demo cohort, read the verdicts as a check of the machinery: every finding that the grid
# can test was computed from the executed notebooks' metrics, and a "not reproduced" is as
# informative about the synthetic data as a "reproduced". The fine-tuned configurations of the
# book grid train for two epochs on a few hundred images, so BN and FT differ much less than
# they would after real fine-tuning.
#
# ## Your run of the paper's grid
#
# When `paper_runs_dir` (default `runs/paper`) holds completed configurations of
# `experiments/paper.yaml`, run on the real data, the same figures' numbers and the findings are
# computed for it here.

# %%
paper_dir = None
if paper_runs_dir.lower() != "none":
    paper_dir = Path(paper_runs_dir) if paper_runs_dir else default_runs_dir("paper")
    if not paper_dir.is_absolute():
        paper_dir = project_root() / paper_dir
paper = (grid_results.collect(paper_dir) if paper_dir is not None and paper_dir.is_dir()
         else pd.DataFrame(columns=list(grid_results.RESULT_COLUMNS)))
if dataset and not paper.empty:
    paper = paper[paper["dataset"] == check_dataset(dataset)]
if paper_dir is None:
    print("The paper grid is not shown (paper_runs_dir = none).")
elif paper.empty:
    print(f"No completed run of the paper grid in {paper_dir}: run it with\n"
          "  python -m fusion_utils.experiments run experiments/paper.yaml\n"
          "on the real data (see the chapter 'Run it on your own data').")
else:
    print(f"{paper['config_id'].nunique()} completed configuration(s) of the paper grid")
    paper_macro = grid_findings.improvements(paper)
    display(paper_macro.pivot_table(index="metric", columns=["dataset", "backbone", "mode",
                                                             "augment"],
                                    values="improvement").round(1))
    display(Markdown(grid_findings.findings_markdown(
        grid_findings.evaluate_findings(paper, tol=tol))))

# %% [markdown]
# ## The real grid: the paper's design on real PTB-XL and HAM10000 data
#
# `experiments/real.yaml` runs the paper's design on the real data of `../shared/data`: the
# 1,533 single-superclass PTB-XL records and all 10,015 HAM10000 images (200x150), split by
# patient / lesion 70/15/15, with the three offline ImageNet backbones, BN and FT, with and
# without augmentation. It ran once (on 2 CPU cores and, for fine-tuning, on a lent GPU) and
# its collected table is committed in `results/real/` with its provenance; this section reads
# it, so every edition of the book shows it (the real edition's main table above is the same
# table). The verdicts below are the same checks as above, on the real data.

# %%
real, real_path, real_note = real_edition.real_grid_table(real_results_path, results_path)
if real is None:
    print(real_note)
else:
    real_prov = real_edition.read_provenance(real_path)
    if real_prov:
        display(Markdown(real_edition.provenance_markdown(real_prov)))
    print(f"Macro AUROC and balanced accuracy on the test split, image-only vs fused, "
          f"{real['config_id'].nunique()} configuration(s) of the real grid:")
    display(real_edition.headline_table(real).round(3))

# %% [markdown]
# The gain from metadata with its uncertainty: for each configuration of the real grid, the
# fused minus the image-only score on the test split with its 95% CI from the paired bootstrap
# of the evaluation chapter (both classifiers scored on the same resamples of the test
# records, stratified by class; `results/real/bootstrap_ci.parquet`, collected from each run's
# notebook 05). `ci_excludes_0` marks the configurations whose interval lies wholly above or
# below zero.

# %%
# beside the committed real table, also when that table is this chapter's main one (real edition)
real_intervals = (real_edition.committed_intervals(real_path.with_name("bootstrap_ci.parquet"))
                  if real_path is not None else None)
if real_intervals is None:
    print("no committed CIs (results/real/bootstrap_ci.parquet); `python -m "
          "fusion_utils.experiments.real_edition collect` writes them")
else:
    real_gains = real_edition.gains_with_intervals(real_intervals)
    display(Markdown("**Real data:** " + real_edition.gains_sentence(real_gains)))
    display(real_gains.drop(columns=["config_id"]).set_index(
        ["dataset", "metric", "backbone", "mode", "augment"]).round(3))

# %%
if real is not None:
    real_findings = grid_findings.evaluate_findings(real, tol=tol)
    display(Markdown(grid_findings.findings_markdown(real_findings)))
    real_counts = real_findings["status"].value_counts()
    print("real grid: " + ", ".join(f"{real_counts.get(s, 0)} {s}"
                                    for s in grid_findings.STATUSES))

# %% [markdown]
# Outside reference points: published figures on related data, beside this grid's median over
# its configurations and the range of its gains from metadata
# (`real_edition.reference_points`). The ISIC 2019 winners' metadata added nothing on the
# hidden test set; Thomas's companion EMBC 2021 paper found one network, VGG16, that the
# metadata did not help (not among this grid's offline networks).

# %%
if real is not None:
    display(real_edition.reference_points(real).round(3))

# %% [markdown]
# The chapters beyond the paper asked the questions a reader asks next, on the same real PTB-XL
# test split: does a learned combination of the three backbones (chapter 9, DVME) or an
# auto-encoder trained without labels on the frozen network's feature maps (chapter 10) do better
# than the grid's classifiers? Their committed tables, with bootstrap 95% CIs (the rows
# "a - b" are paired differences), beside the grid's best configuration:

# %%
if real is not None:
    display(real_edition.beyond_the_paper("ptbxl", real).round(3))

# %% [markdown]
# ## HAM10000 at 200x150: what the reduced resolution costs
#
# The real edition's HAM10000 results use all 10,015 images at 200x150 (`images_200x150/`);
# 273 of them are also present as the 600x450 originals. On those 273 the features of both
# copies are extracted with the same network and preprocessing (`efficientnet_lite0`, BN), and
# the image-only classifier of the real HAM10000 configuration (trained on 200x150 features)
# predicts a class from each: the cosine of the two feature vectors and the share of images
# whose predicted class does not change say how much the downscaling alters what the
# classifiers see (`fusion_utils.features.resolution`). The classifier was fitted without a
# penalty on the training split, which it can memorise, so the figures are also given per split:
# the test split's are the fair ones. Without the two folders (the demo edition) the committed
# comparison is shown.

# %%
from fusion_utils.features import resolution as res_cmp

if str(resolution_data_dir).strip():
    clf = (Path(resolution_run_dir) / "classifier_image.npz"
           if str(resolution_run_dir).strip() else None)
    comparison = res_cmp.compare_resolutions(
        resolution_data_dir, classifier=clf if clf is not None and clf.is_file() else None)
    print(comparison.sentence())
    display(comparison.per_image["cosine"].describe().to_frame().T.round(4))
elif (committed_res := real_edition.committed_resolution()) is not None:
    print("Committed result (real data; `python -m fusion_utils.experiments.real_edition "
          f"resolution`, classifier of {committed_res['classifier_run']}): "
          + committed_res["sentence"])
    display(pd.DataFrame(committed_res.get("by_split") or {}).T.round(4))
else:
    print("Resolution comparison skipped (resolution_data_dir is empty: no real HAM10000 "
          "folder with both resolutions, and no committed results/real/resolution.json).")

# %% [markdown]
# ## Summary
#
# - The grid runner executed every configuration's notebooks and collected one tidy table; this
#   chapter redraws the paper's Figs. 2-4 from it across the whole grid.
# - The paper's findings are checked one by one from that table; on the book grid the findings
#   about specific networks are not testable, and the others are computed on synthetic data, so
#   they show the pipeline working rather than confirm the paper.
# - The same chapter reads a full run of `experiments/paper.yaml` on the real data when one is
#   present.
#
# ## Exercises
#
# 1. Show HAM10000 alone, and ask for a change of at least 2 percentage points before a metric
#    counts as changed. Which verdicts move?
#
#    ```bash
#    fusion-book run 08_results results_ham.ipynb \
#      -p dataset ham10000 -p tol 2.0
#    ```
#
# ```{admonition} Solution
# :class: dropdown
# Findings about PTB-XL and the comparison between datasets become "not testable". A larger
# `tol` widens the band of "unchanged" changes: the HAM10000 "improves almost every metric"
# check counts more pairs as unchanged, and the AUROC check tolerates larger drops, so verdicts
# can only move towards "reproduced" for those two.
# ```
#
# 2. Add a second seed to the book grid to see how much of a difference between configurations
#    is noise. Copy `experiments/book.yaml` to `my_grid.yaml`, change `name: book` to
#    `name: seeds` and add `seed: [0, 1]` under `axes:`; then run the PTB-XL half and this chapter
#    on it:
#
#    ```bash
#    python -m fusion_utils.experiments run my_grid.yaml --only 'ptbxl-*'
#    fusion-book run 08_results results_seeds.ipynb \
#      -p runs_dir runs/seeds -p dataset ptbxl
#    ```
#
# ```{admonition} Solution
# :class: dropdown
# Each configuration now appears twice in the results (ids end in `-0` and `-1`). Compare the
# improvement of the two seeds of one configuration in the heatmap: differences of that size
# between configurations are not evidence for a finding. A grid of real size would run several
# seeds and report their spread, which the paper did not.
# ```
#
# 3. Run one configuration of the paper's grid that the book cannot test, on the demo cohort, if
#    you have the ImageNet weights of AlexNet cached (`TORCH_HOME`): write a grid with
#    `axes: {backbone: [alexnet], mode: [ft], augment: [false]}` and `datasets: {ham10000: {}}`,
#    run it and point this chapter at it. Is "AlexNet FT degrades with metadata" reproduced?
#
# ```{admonition} Solution
# :class: dropdown
# The finding becomes testable (it needs an AlexNet FT configuration on HAM10000). On the
# synthetic cohort the answer says nothing about the paper; the point is that the check is
# computed as soon as the grid holds the configurations it is about.
# ```
