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
# # Scalograms: how does a 12-lead ECG become an image?
#
# The networks of the later chapters were trained on photographs. To use them on PTB-XL the
# paper turns every ECG into a picture: the modulus of a continuous wavelet transform (a
# *scalogram*) of each lead, with the twelve scalograms tiled into one montage (the paper's
# Fig. 1). This chapter answers:
#
# - which transform the paper used, exactly (MATLAB's `cwt` with a Morse wavelet, symmetry
#   3, time-bandwidth 60, 10 voices per octave, at 100 Hz), and what it looks like;
# - what the twelve scalograms of one record show, and how they become one RGB image;
# - whether the five diagnostic superclasses look different on average;
# - and how fast the whole cohort is turned into cached images.
#
# Parameters that change this chapter: `data_dir` (empty: the synthetic demo cohort; or a
# PTB-XL folder), `manifest_path` (the manifest of chapter 01), `wavelet` (`morse`, or a
# PyWavelets wavelet such as `cmor1.5-1.0`), `voices_per_octave`, `layout`, `normalisation`,
# `colormap` and `image_size` (how the montage is drawn: the paper is silent on these, so each
# is a choice made explicit here), `max_records`, `real_record` and `cache_dir`.

# %% tags=["parameters"]
data_dir: str = ""  # PTB-XL folder in its published layout; empty: demo cohort (data/demo/ptbxl)
# manifest_path: manifest of chapter 01; empty: cache/manifests/ptbxl.parquet if built from
# data_dir, else the records listed in the table
manifest_path: str = ""  # manifest of chapter 01; empty: see above
# wavelet: "morse" (the paper: gamma 3, time-bandwidth 60) or a PyWavelets wavelet such as
# "cmor1.5-1.0" or "mexh"
wavelet: str = "morse"  # "morse" (the paper) or a PyWavelets wavelet ("cmor1.5-1.0", "mexh")
voices_per_octave: int = 10  # scales per octave (the paper: 10)
layout: str = "3x4"  # montage grid: "3x4" (MATLAB's montage order), "4x3", "6x2", "3x4-clinical"
normalisation: str = "per_lead"  # "per_lead" (MATLAB's ECG example), "per_record" or "log"
colormap: str = "jet"  # "jet" (MATLAB's jet(128)) or a matplotlib colormap name such as "viridis"
image_size: int = 224  # montage side in pixels (224 for most backbones, 299 for Inception)
max_records: int = 0  # records for the class averages and the cache build, drawn per class; 0: all
# real_record: WFDB base path of a real record shown beside a demo one; empty: record 00001 of
# ../shared/data/ptbxl if present; "none": skip
real_record: str = ""  # real record shown beside a demo one; empty: see above; "none": skip
cache_dir: str = ""  # root of the montage cache; empty: cache/scalograms

# %%
# %matplotlib inline
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from fusion_utils.data import manifest, plots, splits
from fusion_utils.data.ptbxl import LEADS as HEADER_LEADS
from fusion_utils.data.ptbxl import SUPERCLASSES, load_signal
from fusion_utils.paths import default_data_dir, resolve_data_dir, shared_data_dir
from fusion_utils.scalograms import montage
from fusion_utils.scalograms import morse as scalogram
from fusion_utils.scalograms import plots as splots
from fusion_utils.scalograms.cache import ScalogramCache

sns.set_theme(style="whitegrid", context="notebook")

folder = resolve_data_dir("ptbxl", data_dir)
is_demo = not str(data_dir).strip()
if not folder.is_dir():
    hint = ("generate the demo cohort first: `make demo` or "
            "`python -m fusion_utils.data.demo data/demo`"
            if folder == default_data_dir("ptbxl") else "check the data_dir parameter")
    raise FileNotFoundError(f"PTB-XL folder not found: {folder}; {hint}")

# The cohort: the manifest of chapter 01 when it describes this folder, else the table itself.
df, source = manifest.manifest_for_folder("ptbxl", folder, manifest_path)
if max_records and len(df) > max_records:
    df = df.iloc[splits.stratified_subsample(df["label"].to_numpy(), int(max_records), 0)]
df = df.reset_index(drop=True)
fs = float(df.attrs.get("sampling_rate") or 100)

params = montage.MontageParams(
    wavelet=wavelet, voices_per_octave=voices_per_octave, layout=layout,
    normalisation=normalisation, colormap=colormap, image_size=image_size, fs=fs,
)
classes = [c for c in SUPERCLASSES if (df["label"] == c).any()]

# A real record to show beside the cohort's (the paper's Fig. 1 is a real PTB-XL record).
real_base = None
if str(real_record).strip().lower() != "none":
    candidate = (Path(real_record) if str(real_record).strip()
                 else shared_data_dir() / "ptbxl" / "records100" / "00000" / "00001_lr")
    if candidate.with_name(candidate.name + ".hea").is_file():
        real_base = candidate.resolve()
display(Markdown(
    f"**Cohort:** {len(df)} PTB-XL records at {fs:g} Hz from {source}"
    + (" (the synthetic demo cohort)" if is_demo else "") + ". "
    + "Classes: " + ", ".join(f"{c} {int((df['label'] == c).sum())}" for c in classes) + "."
))
print(params)

# %% [markdown]
# ## The wavelet
#
# MATLAB's `cwt` uses the analytic *generalized Morse wavelet* (Lilly & Olhede 2009). In the
# frequency domain the filter at scale $s$ is
#
# $$\Psi_s(\omega) = a\,(s\omega)^{\beta}\,e^{-(s\omega)^{\gamma}} \quad (\omega > 0),
# \qquad \Psi_s(\omega) = 0 \quad (\omega \le 0),$$
#
# with symmetry $\gamma = 3$, time-bandwidth product $P^2 = \beta\gamma = 60$ (so
# $\beta = 20$), and $a = 2(e\gamma/\beta)^{\beta/\gamma}$, which makes every filter peak at
# exactly 2 (L1 normalisation): a sinusoid of amplitude 1 at a row's frequency gives
# $|W| = 1$ on that row, whatever the scale. MATLAB's defaults then fix the scales: the
# smallest filter falls to half its peak at the Nyquist frequency, the largest lets two time
# spreads $\sigma_t$ of the wavelet span the signal, and the scales grow by $2^{1/10}$ (10
# voices per octave). The signal is padded by reflecting half its length on each side.

# %%
n_samples = round(10 * fs)  # PTB-XL records last 10 s
w = scalogram.morse_wavelet(params.gamma, params.time_bandwidth)
scales = scalogram.morse_scales(n_samples, params.gamma, params.time_bandwidth,
                                params.voices_per_octave)
freqs = scalogram.morse_frequencies(n_samples, fs, params.gamma, params.time_bandwidth,
                                    params.voices_per_octave)
constants = pd.DataFrame({
    "quantity": ["beta", "peak frequency w_psi (rad/sample)", "half-peak frequency w_c",
                 "time spread sigma_t", "smallest scale s0 = w_c / pi", "number of scales",
                 "highest row (Hz)", "lowest row (Hz)"],
    "value": [w.beta, w.peak_frequency, w.cutoff_frequency, w.sigma_t, scales[0], len(scales),
              freqs[0], freqs[-1]],
})
display(constants.style.format({"value": "{:.6g}"}).hide(axis="index"))
fig = splots.plot_morse_wavelet(params.gamma, params.time_bandwidth, n_samples=n_samples, fs=fs,
                                voices_per_octave=params.voices_per_octave)
plt.show()

# %% [markdown]
# *Figure: left, the wavelet whose centre frequency is 10 Hz, in time (its real and imaginary
# parts oscillate inside a smooth envelope, the modulus); right, the frequency response of
# every tenth filter of the bank (one per octave): all peak at 2, the smallest-scale filter is
# at half its peak (1) at the Nyquist frequency.* For a 10 s record at 100 Hz the bank has 71
# filters, from 43.41 Hz down to 0.339 Hz, which is what MATLAB's `cwt` returns for these
# parameters (its `cwtfreqbounds(1000)` gives 0.0033 and 0.4341 cycles per sample). The tests
# check these numbers, and agreement with an independent implementation (ssqueezepy's
# generalized Morse wavelets) to 1e-10.
#
# ## One record's twelve scalograms

# %%
first_class = df[df["label"] == classes[0]]
others = first_class[[Path(p).resolve() != real_base for p in first_class["path"]]]
example = (others if len(others) else first_class).iloc[0]  # not the real record shown later
signal = load_signal(example["path"], sampling_rate=int(fs))
mag, freqs_w = scalogram.cwt_scalogram(signal.T, params.wavelet, fs, params.voices_per_octave,
                                       gamma=params.gamma, time_bandwidth=params.time_bandwidth)
plots.plot_ecg(signal, HEADER_LEADS, fs=fs, title=f"ecg_id {example['record_id']} "
               f"({example['label']}), {'demo cohort' if is_demo else folder}")
plt.show()
fig = splots.plot_lead_scalograms(mag, freqs_w, fs, title=f"|W| of each lead, wavelet "
                                  f"{params.wavelet}, ecg_id {example['record_id']}")
plt.show()

# %% [markdown]
# *Figures: the record (top) and the modulus of its wavelet transform, lead by lead (bottom);
# time runs left to right, frequency from high (top) to low (bottom) on a logarithmic axis,
# and each panel has its own colour scale.* Each heartbeat is a vertical streak: the QRS
# complex reaches up to 20-40 Hz, the P and T waves stay below about 10 Hz, and slow baseline
# drift sits in the bottom rows. The edges are affected by the padding, most at low
# frequencies, where the wavelet is longest.
#
# ## From twelve scalograms to one image
#
# The paper tiles the twelve scalograms into one picture but does not say how they are
# scaled, coloured or resized. This book follows MATLAB's own ECG transfer-learning example
# and documents each choice as a parameter: each scalogram is min-max scaled on its own
# (`normalisation="per_lead"`), coloured with MATLAB's 128-colour jet map, and the tiles are
# placed like MATLAB's `montage` (3 rows x 4 columns, filled row by row: I II III aVR /
# aVL aVF V1 V2 / V3 V4 V5 V6). Each lead is resized to its tile (56 x 75 pixels in a 224
# pixel image) by bilinear interpolation with antialiasing, so that 10 s of signal average
# into 56 columns instead of skipping beats.

# %%
images = {f"demo record {example['record_id']} ({example['label']})" if is_demo else
          f"record {example['record_id']} ({example['label']})":
          montage.scalograms_to_montage(mag, params)}
if real_base is not None:
    real_fs = 500 if real_base.name.endswith("_hr") else 100
    real_params = montage.MontageParams(**{**params.to_dict(), "fs": float(real_fs)})
    real_signal = load_signal(real_base, sampling_rate=real_fs)
    images[f"real PTB-XL record {real_base.name} (../shared/data)"] = montage.record_to_montage(
        real_signal, real_params)
    display(Markdown(f"The right-hand montage is the **real** record `{real_base}`; the left one "
                     f"comes from {'the synthetic demo cohort' if is_demo else str(folder)}."))
else:
    display(Markdown("The real PTB-XL sample (`../shared/data/ptbxl`) is not available here, so "
                     "only the cohort's record is shown."))
fig = splots.plot_montages(images, layout=params.layout)
plt.show()

# %% [markdown]
# *Figure: montages in the layout and colours of the parameters (lead names drawn for
# orientation only; the network sees the image without them).* This is the picture the
# networks receive for each record (the paper's Fig. 1). With per-lead scaling every tile uses
# the whole colour range, so a lead with a 0.2 mV QRS looks as bright as one with 2 mV: the
# image keeps the *shape* of each lead's time-frequency content and discards the voltages
# between leads. The other intensity options keep them:

# %%
record_for_options = real_signal if real_base is not None else signal
options = {}
for norm in montage.NORMALISATIONS:
    p = montage.MontageParams(**{**params.to_dict(), "normalisation": norm,
                                 "fs": float(real_fs if real_base is not None else fs)})
    options[f"normalisation = {norm}"] = montage.record_to_montage(record_for_options, p)
fig = splots.plot_montages(options, layout=params.layout)
plt.show()

# %% [markdown]
# *Figure: the same record (the real one when available) with the three intensity options.*
# `per_record` scales all twelve leads together, so low-voltage leads turn dark blue;
# `log` compresses three decades of |W| into the colour range, so weak high-frequency content
# and the quiet intervals between beats become visible.
#
# ## Do the classes look different?
#
# Average the normalised scalograms of every record of a class (streamed, record batch by
# batch) and draw the average as a montage. The curves below average the same pictures over
# time: how much of each lead's (normalised) energy sits at each frequency, per class.

# %%
averages, counts = {}, {}
for c in classes:
    paths_c = df.loc[df["label"] == c, "path"]
    averages[c], counts[c] = montage.mean_scalograms(
        (load_signal(p, sampling_rate=int(fs)) for p in paths_c), params)
fig = splots.plot_montages({f"{c} (mean of {counts[c]})": montage.scalograms_to_montage(a, params)
                            for c, a in averages.items()}, layout=params.layout,
                           ncols=min(5, len(averages)), size=3.0)
plt.show()
fig = splots.plot_frequency_profiles({c: a.mean(axis=-1) for c, a in averages.items()}, freqs)
plt.show()

# %% [markdown]
# *Figures: class-average montages (top) and time-averaged frequency profiles of four leads
# (bottom).* Averaging over records blurs the beats, which fall at different times in
# different records, into horizontal bands; what remains is where each class puts its
# energy (with few records per class the beats still show as streaks). Differences between
# the class curves are what a network can pick up beyond the beat-to-beat detail. (On the
# demo cohort they come from how the synthetic records were drawn; run the chapter on the
# real data to see PTB-XL's own.)
#
# ## The cache: every record once, on disk
#
# Later chapters read each record's montage many times (every epoch of fine-tuning, every
# configuration of the grid), so the images are computed once and stored as PNG files that
# mirror PTB-XL's folders, under a sub-folder named by a hash of the montage parameters (a
# changed parameter writes to a new folder and never serves stale images). Files are written
# atomically and existing ones skipped, so an interrupted build resumes where it stopped.

# %%
cache = ScalogramCache(cache_dir or None, params)
summary = cache.build(df["path"], progress=True)
print(summary)
again = cache.build(df["path"], progress=False)
print(again)
print(json.dumps(json.loads((cache.folder / "params.json").read_text()), indent=1)[:600])
first = cache.path_for(df["path"].iloc[0])
print("example file:", first.relative_to(cache.root), f"({first.stat().st_size / 1e3:.0f} kB)")
np.testing.assert_array_equal(cache.get(example["path"]),
                              montage.scalograms_to_montage(mag, params))

# %% [markdown]
# The first build computed every missing image; the second found them all and computed
# nothing. The throughput above includes reading each WFDB record and writing its PNG, on
# whatever else the machine is doing. The transform alone is measured by
# `benchmarks/bench_scalogram.py`, against `pywt.cwt` and a plain NumPy loop in the same run.
# The fast path computes the same numbers as the NumPy reference (to about 1e-6 of each row's
# maximum) with less work: the high-frequency rows by batched float32 inverse FFTs in torch,
# shortened to a window of the padded signal where the wavelet is short; the narrow
# low-frequency rows as matrix products with a band-limited basis; the chunks spread over the
# cores. The aim is at least 150 records per second on two cores, so that all 21,799 records
# of PTB-XL take minutes, not hours (the project's 2-core machine measured 168).

# %%
display(Markdown(f"Cache: `{cache.folder}`; {summary.computed} computed, {summary.cached} already "
                 f"there, {len(summary.failed)} failed; {summary.records_per_s:.1f} records/s "
                 "including file reading and writing."))

# %% [markdown]
# ## Summary
#
# - The scalograms reproduce MATLAB's `cwt(x, 'morse', fs)` with `WaveletParameters [3 60]`
#   and 10 voices per octave: 71 rows from 43.4 Hz to 0.34 Hz for a 10 s record at 100 Hz,
#   each filter L1-normalised to peak at 2.
# - The montage choices the paper leaves open (layout, intensity scaling, colours, resizing)
#   follow MATLAB's ECG example by default and are parameters of this chapter and of the
#   cache key. Feature extraction (chapter 03) draws the default montage at each network's
#   own input size (224, 227 for AlexNet, 299 for Inception-ResNet-v2), so the cache built
#   here at 224 pixels serves the 224-pixel networks; other choices made here reach it as
#   `extract_features(..., montage_params=params)`, with `image_size` set to the network's.
# - Per-lead scaling keeps the shape of each lead's time-frequency content and discards the
#   voltage ratios between leads; `per_record` and `log` keep them.
# - Every record's montage is computed once, in batches, and cached on disk by parameter set.
#
# ## Exercises
#
# 1. Compare the paper's wavelet with a complex Morlet wavelet on the same frequency grid.
#    What changes in the montage of record 00001?
#
#    ```bash
#    fusion-book run 02_scalograms 02_cmor.ipynb \
#        -p wavelet cmor1.5-1.0 -p max_records 50
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# `cmor1.5-1.0` is the broader filter: its half-height bandwidth is 0.43 of its centre
# frequency against 0.30 for the Morse (3, 60) wavelet, so it is shorter in time. The beats
# become sharper vertical streaks, but each one spreads over more rows, and the rows that
# carry most of lead II's energy move (for record 00001 the time-averaged maximum sits near
# 7 Hz instead of 3 Hz). The frequency grid is the same, so rows line up one to one with the
# Morse montage (`cwt_scalogram` divides PyWavelets' coefficients by the square root of the
# scale, so rows are L1-normalised like MATLAB's).
# ````
#
# 2. With `normalisation="per_record"`, which leads of record 00001 become darkest, and why
#    could that matter for a classifier?
#
#    ```bash
#    fusion-book run 02_scalograms 02_per_record.ipynb \
#        -p normalisation per_record -p max_records 50
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# The leads with the weakest signal: in record 00001 the peak of |W| is 0.04 in aVF, 0.06 in
# III and 0.08 in aVL and II, against 0.26 in V2 and 0.19 in V3, so the limb-lead tiles stay
# dark blue and V2-V3 are the brightest. Voltage is part of the clinical definition of
# hypertrophy (HYP: large QRS amplitudes in the chest leads, as in the Sokolow-Lyon index),
# so a per-record image keeps information that per-lead scaling throws away, at the price of
# low contrast in weak leads.
# ````
#
# 3. A 224 pixel 3x4 montage gives each lead 56 columns for 10 s. How many milliseconds does
#    one pixel column cover with `-p layout 6x2 -p image_size 299`, and is a QRS complex
#    (about 100 ms) still wider than a pixel?
#
#    ```bash
#    fusion-book run 02_scalograms 02_6x2.ipynb \
#        -p layout 6x2 -p image_size 299 -p max_records 50
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# A 3x4 montage at 224 px: 10 s / 56 px = 179 ms per column, wider than a QRS complex, which
# is averaged with its surroundings. 6x2 at 299 px: the columns are 149 and 150 px wide
# (`tile_boxes("6x2", 299)`), about 67 ms per column, so a QRS spans one to two columns.
# The price is height: six rows of 49-50 px for the 71 frequencies, against 74-75 px in the
# default 224 px 3x4 montage.
# ````
#
# 4. Run the chapter on the real PTB-XL sample (160 records) and compare the class-average
#    profiles with the demo cohort's.
#
#    ```bash
#    fusion-book run 02_scalograms 02_real.ipynb \
#        -p data_dir ../shared/data/ptbxl
#    ```
#
# ````{admonition} Solution
# :class: dropdown
# The sample has 129 records with exactly one superclass (NORM 76, STTC 20, CD 16, MI 13,
# HYP 4), so the HYP average rests on four records and is noisy. The cache build writes 129
# images into a folder named after `ptbxl` and a hash of the real folder's path, beside (not
# over) the demo cohort's images, because both datasets contain a `records100/00000/00001_lr`.
# ````
