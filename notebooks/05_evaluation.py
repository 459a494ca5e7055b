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
# # Does metadata help? Nine metrics, the improvement and its significance
#
# This chapter answers the paper's question for one configuration: **on the unseen test split,
# is the classifier trained on image features plus metadata better than the one trained on the
# image features alone, by how much, and is the difference more than chance?** It computes the
# paper's nine metrics (Sec. II.C) for both classifiers, their macro mean and spread across
# classes, the improvement in percentage points (Figs. 2-3), the class-wise AUROC difference
# with DeLong's paired test, bootstrap confidence intervals, ROC curves and confusion matrices.
# (The paper's Fig. 4 pools the class-wise differences across eight networks; the results
# chapter draws it with a test across networks.)
#
# Parameters that change it: `dataset` and `run_dir` (the folder where the fusion chapter wrote
# `predictions.parquet`), `n_bootstrap` and `seed` (the confidence intervals), `config_label`
# (the name of this configuration in the figures).

# %% tags=["parameters"]
dataset: str = "ptbxl"  # ptbxl or ham10000
run_dir: str = ""  # folder holding predictions.parquet (notebook 04); empty: runs/single/<dataset>
n_bootstrap: int = 1000  # bootstrap resamples for the 95% confidence intervals
seed: int = 0  # seed of the bootstrap
config_label: str = ""  # name of this configuration in the figures; empty: the run folder's name

# %%
# %matplotlib inline
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from fusion_utils.evaluation import metrics, significance
from fusion_utils.evaluation import plots as eval_plots
from fusion_utils.evaluation import summary as eval_summary
from fusion_utils.paths import check_dataset
from fusion_utils.run_folder import RunFolder

dataset = check_dataset(dataset)
run = RunFolder.for_notebook(dataset, run_dir)
label = config_label or run.path.name
predictions = run.read_predictions()
classes = run.prediction_classes(predictions)
prob_cols = [f"prob.{c}" for c in classes]
test = predictions[predictions["split"] == "test"]
image = test[test["model"] == "image"].set_index("record_id")
fused = test[test["model"] == "fused"].set_index("record_id").loc[image.index]
y_test = image["label"].to_numpy()
probas = {"image": image[prob_cols].to_numpy(), "fused": fused[prob_cols].to_numpy()}
print(f"{label}: {len(y_test)} test records, classes {classes}")
glue("data_label", eval_summary.data_label(label, dataset, len(y_test)), display=False)
pd.Series(y_test).value_counts().reindex(classes).rename("test records").to_frame()

# %% [markdown]
# ## Nine metrics, one-vs-rest
#
# Each class is scored as "this class vs the rest" from the predicted class (the most probable
# one): accuracy, specificity, sensitivity, precision, F-measure, informedness (sensitivity +
# specificity - 1), markedness (precision + negative predictive value - 1), Matthews
# correlation coefficient and the area under the ROC curve of the class probability. The macro
# mean averages the classes with equal weight; the standard deviation across classes shows how
# uneven they are. A metric that is undefined for a class (for example precision of a class
# never predicted) is left out of the mean with a warning.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", metrics.UndefinedMetricWarning)
    table = metrics.compare_models(y_test, probas, classes)
for w in caught:
    print("note:", w.message)
macro = (table[table["class"].isin(["macro_mean", "macro_std"])]
         .pivot_table(index="metric", columns=["model", "class"], values="value", sort=False)
         .reindex(list(metrics.METRICS)))
macro.round(3)

# %%
fig = eval_plots.macro_metric_bars(table, title=label)
glue("fig_eval_macro", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eval_macro
#
# Macro-averaged metrics of the two classifiers on the test split of {glue:text}`data_label`.
# Bars are the macro means, error bars the standard deviation across classes (MATLAB's `std`,
# $N - 1$; not a confidence interval).
# ```
#
# ## The improvement (Figs. 2 and 3)
#
# The paper plots the difference fused - image of each macro metric in percentage points: 70%
# without and 80% with metadata is plotted as +10. The relative change (for that example
# +14%, 10/70) is the other common reading; both are below.

# %%
wide = metrics.improvement_table(table)
improvement = wide[wide["class"] == "macro_mean"].set_index("metric")[
    ["image", "fused", "improvement", "relative_change"]]
improvement.round(3)

# %%
fig = eval_plots.improvement_heatmap(table.assign(configuration=label),
                                     title=f"Improvement from metadata, {dataset}")
glue("fig_eval_improvement", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eval_improvement
#
# Improvement of each macro metric from adding metadata, in percentage points (the paper's
# Figs. 2-3 for this one configuration), {glue:text}`data_label`. Blue: better with metadata;
# red: worse. The results chapter draws the same heatmap with one column per configuration.
# ```
#
# ## Bootstrap confidence intervals
#
# How much would these macro metrics move on another test set of the same size? We resample the
# test records with replacement, separately within each true class (so each class keeps its
# count), `n_bootstrap` times with a fixed seed, recompute every macro metric for both
# classifiers on the same resample, and report the 2.5th and 97.5th percentiles (percentile
# intervals). The row `fused - image` is the paired difference; an interval that excludes 0 is a
# difference unlikely to be resampling noise.

# %%
ci = significance.bootstrap_macro_ci(y_test, probas, classes, n_bootstrap=n_bootstrap, seed=seed)
ci.pivot_table(index="metric", columns="model", values=["estimate", "ci_low", "ci_high"],
               sort=False).reindex(list(metrics.METRICS)).round(3)

# %% [markdown]
# ## Class-wise AUROC and DeLong's test
#
# For each class, DeLong's test asks whether the two classifiers' AUROCs for "this class vs the
# rest" differ, on the **same** test records (a paired test: both AUROCs come from the same
# patients, so their errors are correlated, and the test uses that covariance). The variance of
# the AUROC difference comes from DeLong's nonparametric structural components (computed with
# Sun and Xu's fast algorithm); $z = \Delta\mathrm{AUROC}/\mathrm{SE}$ is compared with a normal
# distribution, two-sided. The stars are the paper's levels: \* for $p \le 0.10$ and \*\* for
# $p \le 0.05$. With five or seven classes, some p-values below 0.10 are expected by chance
# alone; the test is per class, without correction for multiple comparisons.
#
# Which test the paper used it does not say. Its Fig. 4 draws, per class and set-up, the
# distribution of the AUROC differences across its eight networks and marks "statistically
# significant differences between these distributions"; the results chapter redraws that figure
# with a paired test across networks (Wilcoxon's signed-rank test,
# `significance.across_networks_test`). One configuration has one network, so this chapter uses
# the finer test that one configuration allows: DeLong's, on its test records. It is this
# book's choice, not the paper's.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sig = significance.classwise_delong(y_test, probas["image"], probas["fused"], classes)
for w in caught:
    print("note:", w.message)
sig.round(4)

# %%
fig = eval_plots.classwise_auroc_difference(sig, title=label)
glue("fig_eval_classwise", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eval_classwise
#
# Class-wise AUROC difference, fused - image, in percentage points, {glue:text}`data_label`.
# Bars are DeLong's 95% intervals (1.96 standard errors), stars DeLong's p-value
# (\* $p \le 0.10$, \*\* $p \le 0.05$). Positive: the fused classifier ranks that class better.
# ```

# %%
fig = eval_plots.roc_curves(y_test, probas, classes, sig=sig)
glue("fig_eval_roc", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eval_roc
#
# One-vs-rest ROC curves of each class, {glue:text}`data_label`: image-only (grey) and fused
# (blue); the legend gives the AUROC and the title the DeLong stars.
# ```

# %%
fig = eval_plots.confusion_matrices(y_test, probas, classes)
glue("fig_eval_confusion", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eval_confusion
#
# Confusion matrices on the test split of {glue:text}`data_label`. Rows are the true classes,
# columns the predicted ones; colours are row fractions (the diagonal is each class's
# sensitivity) and the numbers are counts.
# ```

# %%
run.write_metrics(table)
run.write_table("significance.parquet",
                sig[["class", "auc_image", "auc_fused", "diff", "p_value", "stars"]])
run.write_table("bootstrap_ci.parquet", ci)
run.record("evaluation", {"n_bootstrap": n_bootstrap, "bootstrap_seed": seed,
                          "config_label": label}, dataset=dataset)
display(Markdown(
    eval_summary.evaluation_summary(improvement, sig) + " "
    f"Written to `{run.path}`: `metrics.parquet`, `significance.parquet`, "
    "`bootstrap_ci.parquet`."))

# %% [markdown]
# ## Summary
#
# - The nine metrics are one-vs-rest per class, then macro-averaged; the improvement is the
#   difference fused - image in percentage points, as in the paper's Figs. 2-3.
# - DeLong's test compares the two classifiers' AUROC class by class on the same test records
#   (this book's per-configuration test; the paper names none); the bootstrap gives intervals
#   for the macro metrics and their paired difference.
# - On the synthetic demo cohort the size of any gain reflects how the demo metadata were
#   generated, not the real data.
#
# ## Exercises
#
# These read the predictions that chapter 4 writes with its default run folder
# (`runs/single/<dataset>`); run chapters 3 and 4 first, for PTB-XL
# `fusion-book run 03_feature_extraction 03_ptbxl.ipynb -p dataset ptbxl` and
# `fusion-book run 04_fusion 04_ptbxl.ipynb -p dataset ptbxl`, and for exercise 2 the same with
# `-p dataset ham10000`.
#
# 1. Rerun with fewer bootstrap resamples. How stable are the interval limits?
#    `fusion-book run 05_evaluation out.ipynb -p n_bootstrap 100 -p seed 1`
# 2. Evaluate the other dataset's run.
#    `fusion-book run 05_evaluation out.ipynb -p dataset ham10000`
# 3. Which metric can improve while specificity hardly moves, and why (the paper, Sec. III.B)?
#
# ```{admonition} Solutions
# :class: dropdown
# 1. Percentile limits from 100 resamples move by about a percentage point between seeds; 1000
#    resamples make the second decimal of the limits stable.
# 2. The same cells run on the HAM10000 run folder (seven classes instead of five).
# 3. Specificity is the only metric without true positives in its definition; when metadata
#    turn false negatives into true positives of a small class, sensitivity, precision, F1,
#    informedness, markedness and MCC rise, while the many true negatives keep specificity
#    (and accuracy) almost unchanged.
# ```
