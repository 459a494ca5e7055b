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
# # Data preparation: which records, which labels, which metadata, which split?
#
# Every later chapter reads one table per cohort, the **manifest**, written here. This chapter
# answers the questions that decide what the classifiers will see:
#
# - how many records have a usable label and a file on disk (and how many are skipped),
# - how the classes are balanced,
# - how the patient metadata differ between classes (the signal that fusion can exploit),
# - what a record looks like (a 12-lead ECG for PTB-XL, dermoscopy images for HAM10000),
# - and how the records are split into training, validation and test sets.
#
# The paper keeps the PTB-XL records with exactly one diagnostic superclass (NORM, MI, STTC, CD,
# HYP) and the seven HAM10000 diagnoses, and splits each class 70/15/15 at random. Parameters that
# change this chapter: `dataset` (`ptbxl` or `ham10000`), `data_dir` (empty: the synthetic demo
# cohort; or a folder with the real data), `sampling_rate` (PTB-XL 100 or 500 Hz), `split_scheme`
# (`stratified` as in the paper, PTB-XL's official `strat_fold`, or `group`, which keeps each
# patient or lesion in one split), `seed`, `max_records`, `metadata_columns`, `manifest_path` and
# `image_dir` (HAM10000: which image folder to read, e.g. `images_200x150`, the reduced-resolution
# copy of all 10,015 images in `../shared/data`; the manifest records the folder and the
# resolution).

# %% tags=["parameters"]
dataset: str = "ptbxl"  # which cohort: "ptbxl" or "ham10000"
data_dir: str = ""  # dataset folder (published layout); empty: demo cohort (data/demo/<dataset>)
sampling_rate: int = 100  # PTB-XL records at 100 or 500 Hz (ignored for HAM10000)
# split_scheme: "stratified" (70/15/15 per class, the paper), "strat_fold" (PTB-XL folds) or
# "group" (patient/lesion-aware)
split_scheme: str = "stratified"  # "stratified" (the paper), "strat_fold" or "group"
seed: int = 0  # random seed of the split and of the max_records subsample
max_records: int = 0  # keep at most this many records, drawn per class; 0: keep all
metadata_columns: str = "patient"  # "patient", "all", or comma-separated names ("age,sex,device")
manifest_path: str = ""  # manifest to write (parquet); empty: cache/manifests/<dataset>.parquet
image_dir: str = ""  # HAM10000 image folder in data_dir ("images_200x150"); empty: published ones

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from fusion_utils.data import manifest, plots
from fusion_utils.paths import check_dataset, require_data_dir

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.max_columns", 20)

dataset = check_dataset(dataset)
folder = require_data_dir(dataset, data_dir)
is_demo = not str(data_dir).strip()
display(Markdown(f"**Cohort:** `{dataset}` from `{folder}`"
                 + (" (the synthetic demo cohort)" if is_demo else "")))

# %% [markdown]
# ## The cohort
#
# `build_manifest` reads the dataset's own tables, keeps the records with one label, checks that
# each record's file (a WFDB signal or an image) exists, optionally subsamples per class, and
# assigns the split. The report says what each step dropped. On the real samples in
# `../shared/data` the tables are complete but only some files are present, so most rows are
# *skipped as missing*; on a full download or on the demo cohort that count is zero.

# %%
df, report = manifest.build_manifest(
    dataset, folder, sampling_rate=sampling_rate, split_scheme=split_scheme, seed=seed,
    max_records=max_records or None, metadata_columns=metadata_columns,
    image_dir=image_dir or None,
)
print(report)
df.head()

# %% [markdown]
# ## Class balance
#
# Both datasets are imbalanced. In the full PTB-XL table (v1.0.1, 21,837 records) 16,272 records
# have exactly one superclass, more than half of them NORM; the paper reports 15,351, a number
# that no likelihood threshold on the official table reproduces. HAM10000 is dominated by
# melanocytic nevi (`nv`, 6,705 of 10,015 images) with dermatofibroma (`df`, 115) the rarest class,
# as in the paper. The demo cohort flattens these proportions so that every class has enough
# records at the book's small size.

# %%
ax = plots.plot_class_balance(df, title=f"{dataset}: records per class (n = {len(df)})")
plt.show()

# %% [markdown]
# *Figure: records per class in this cohort, with each class's share.*
#
# ## Metadata per class
#
# These are the columns that will be fused with the image features (the paper's choice: the
# patient's age and sex, plus height and weight for PTB-XL and the lesion's body site for
# HAM10000). A column helps the fused classifier when its distribution differs between classes.
# Numeric columns are box plots per class, with the share of missing values under each class;
# categorical columns are heat maps of each category's share within a class (each column sums
# to 1). In PTB-XL `sex` is coded 0 = male, 1 = female; height and weight are missing for most
# records.

# %%
fig = plots.plot_metadata_by_class(df)
plt.show()

# %% [markdown]
# *Figure: the selected metadata, class by class.* Differences visible here (for example older
# patients in the MI, STTC and CD classes than in NORM, or the body site of a lesion) are what
# fusion can add to the image features; a column that looks the same in every class can only
# add noise.
#
# ## What a record looks like

# %%
if dataset == "ptbxl":
    from fusion_utils.data.ptbxl import LEADS, load_signal

    shown = df.groupby("label", sort=False).head(1).set_index("label")
    for label in [c for c in df.attrs["classes"] if c in shown.index][:2]:
        row = shown.loc[label]
        signal = load_signal(row["path"], sampling_rate=sampling_rate)
        plots.plot_ecg(signal, LEADS, fs=sampling_rate,
                       title=f"ecg_id {row['record_id']} ({label}), {sampling_rate} Hz")
        plt.show()
else:
    examples = {c: df.loc[df["label"] == c, "path"].head(3).tolist()
                for c in df.attrs["classes"] if (df["label"] == c).any()}
    plots.plot_example_images(examples, n_per_class=3)
    plt.show()

# %% [markdown]
# *Figure: for PTB-XL, a 12-lead ECG of the first record of the first two classes present
# (limb leads I to AVF on the left, chest leads V1 to V6 on the right, 10 s, in mV); for
# HAM10000, up to three dermoscopy images per diagnosis.* The next chapter turns each ECG into a
# montage of twelve scalograms, so that both datasets become images for the same networks.
#
# ## The split
#
# The table counts records per class and split. With `stratified` every class is split 70/15/15
# separately (each class's share rounded, as MATLAB's `splitEachLabel` does, which reproduces
# the paper's 1,502 validation and 1,502 test images on HAM10000). `strat_fold` uses PTB-XL's ten
# folds (1-8 train, 9 validation, 10 test). `group` keeps every patient (PTB-XL `patient_id`)
# or lesion (HAM10000 `lesion_id`) in one split. The last line below counts the groups that
# straddle two splits: records of the same patient or lesion on both sides of the train/test
# line make the test set easier than new patients would be.

# %%
table = manifest.split_table(df)
display(table)
plots.plot_split_counts(table)
plt.show()
n_groups = df["group"].nunique()
straddling = int(df.groupby("group")["split"].nunique().gt(1).sum())
print(f"{n_groups} {'patients' if dataset == 'ptbxl' else 'lesions'}; "
      f"{straddling} of them have records in more than one split")

# %% [markdown]
# *Figure: records per class and split.*
#
# ## The manifest
#
# The manifest is written as parquet; its schema (record id, label, absolute file path, group,
# split and the `meta.*` columns) is fixed in `ARCHITECTURE.md`, and the parameters of this
# chapter travel with it as table metadata, so later chapters know how it was made.

# %%
out = Path(manifest_path) if str(manifest_path).strip() else manifest.default_manifest_path(dataset)
manifest.save_manifest(df, out)
check = manifest.load_manifest(out)
assert check.equals(df), "the manifest did not round-trip"
print(f"wrote {len(check)} records to {out}")
print({k: v for k, v in check.attrs.items() if k != "report"})

# %% [markdown]
# ## Summary
#
# - The manifest holds one row per usable record: the label, the absolute path of its signal or
#   image, its patient or lesion, its split and its metadata columns.
# - Records without exactly one label, or without their file on disk, are dropped and counted.
# - The classes are imbalanced in both real datasets; the metadata differ between classes, which
#   is what the fusion chapters measure.
#
# ## Exercises
#
# 1. Run this chapter on the real PTB-XL sample in `../shared/data/ptbxl` and compare its class
#    balance with the demo cohort's:
#
#    ```bash
#    fusion-book run 01_data_preparation ptbxl_real.ipynb \
#        -p dataset ptbxl -p data_dir ../shared/data/ptbxl \
#        -p manifest_path cache/manifests/ptbxl_real.parquet
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# The report says 21,837 rows, 5,565 without exactly one superclass and 16,143 skipped because
# their signal files are not in the sample: 129 records remain (NORM 76, STTC 20, CD 16, MI 13,
# HYP 4). NORM holds 59% of them, close to its 56% share of the full table, while the demo
# cohort gives NORM about 42%.
# ````
#
# 2. How many patients straddle the training and test sets under the paper's split, and under
#    `group`? Use the full PTB-XL table without files (`build_manifest(..., require_files=False)`)
#    or run:
#
#    ```bash
#    fusion-book run 01_data_preparation ptbxl_group.ipynb \
#        -p split_scheme group -p manifest_path cache/manifests/ptbxl_group.parquet
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# With `stratified`, records are assigned one by one, so a patient with several ECGs can land in
# two splits; with `group` (and with `strat_fold`) the last line of the split section prints 0
# straddling patients. On the full real table (16,272 records of 14,641 patients) the paper's
# split puts 656 patients in more than one split, `group` none:
#
# ```python
# from fusion_utils.data.manifest import build_manifest
# for scheme in ("stratified", "group"):
#     df, _ = build_manifest("ptbxl", "../shared/data/ptbxl", split_scheme=scheme,
#                            require_files=False)
#     print(scheme, df.groupby("group")["split"].nunique().gt(1).sum())
# ```
# ````
#
# 3. HAM10000's `dx_type` says how a diagnosis was confirmed. Add it to the metadata and look at
#    its heat map. Why does the paper discard it?
#
#    ```bash
#    fusion-book run 01_data_preparation ham_dx_type.ipynb \
#        -p dataset ham10000 -p metadata_columns "age,sex,localization,dx_type" \
#        -p manifest_path cache/manifests/ham10000_dx_type.parquet
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# Confirmation depends on the diagnosis. In the full real table every `akiec`, `bcc` and `mel`
# was confirmed by histopathology, follow-up occurs only for `nv` (55% of them) and confocal
# microscopy only for `bkl`. A classifier given `dx_type` learns how the label was obtained, not
# what the lesion looks like: a label leak that would inflate the gain from fusion. (The demo
# cohort draws `dx_type` per class in the same way.)
# ````
