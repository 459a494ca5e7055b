"""Figures of the interpretability and metadata-only chapters (Figs. 5-6 of Thomas 2021 and more).

Every function takes the tables or weights that :mod:`fusion_utils.interpret` produces and returns
a ``matplotlib`` figure; nothing is written to disk. matplotlib and seaborn are imported inside the
functions, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.interpret.weights import ClassifierWeights

__all__ = [
    "note_figure",
    "plot_auroc_intervals",
    "plot_fig5",
    "plot_fig6",
    "plot_importance",
    "plot_per_class_auroc",
    "plot_raw_vs_standardised",
]


def _fmt(x: float) -> str:
    return f"{x:.2g}" if np.isfinite(x) else "n/a"


def plot_fig5(
    image_only: ClassifierWeights,
    fused: ClassifierWeights,
    *,
    bins: int = 40,
    clip_quantile: float = 0.98,
    title: str = "",
) -> Any:
    """The paper's Fig. 5: classifier weights per class, image-only vs fused.

    Rows: (1) histogram of the image-feature weights of the image-only classifier; (2) the same
    for the fused classifier; (3) the fused classifier's metadata weights (bars). Columns:
    classes. Each histogram is annotated with the median ``|weight|``; rows 1 and 2 have their
    own x-scales (the shrinkage is read from the annotations and the axes, as in the paper);
    their range is the ``clip_quantile`` of ``|weight|``, so that a handful of extreme weights
    (features with almost no variance) do not squash the histograms.

    Parameters
    ----------
    image_only, fused : ClassifierWeights
        ``classifier_image.npz`` and ``classifier_fused.npz`` of one run.
    bins : int
        Histogram bins.
    clip_quantile : float
        Quantile of ``|weight|`` (over all classes of a row) that sets the histogram range;
        weights beyond it are counted in the end bins and reported in the panel.
    title : str
        Figure title (e.g. the run's backbone).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    a, b = image_only.blocks, fused.blocks
    if list(a.classes) != list(b.classes):
        raise ValueError(f"class order differs: {list(a.classes)} vs {list(b.classes)}")
    k = len(a.classes)
    fig, axes = plt.subplots(3, k, figsize=(2.3 * k + 1, 7.8), squeeze=False,
                             sharey="row", constrained_layout=True)
    rows = [(a.image, "image features,\nimage only", "tab:blue"),
            (b.image, "image features,\nwith metadata", "tab:orange")]
    for r, (block, label, color) in enumerate(rows):
        finite = np.abs(block[np.isfinite(block)])
        # robust range: a few features with almost no variance can get huge weights
        lim = float(np.quantile(finite, clip_quantile)) if finite.size else 1.0
        lim = lim if lim > 0 else 1.0
        edges = np.linspace(-lim, lim, bins + 1)
        for c in range(k):
            ax = axes[r, c]
            w = block[c][np.isfinite(block[c])]
            ax.hist(np.clip(w, -lim, lim), bins=edges, color=color, alpha=0.85)
            ax.axvline(0, color="k", lw=0.6)
            n_out = int((np.abs(w) > lim).sum())
            note = f"median |w| {_fmt(float(np.median(np.abs(w)))) if w.size else 'n/a'}"
            if n_out:
                note += f"\n{n_out} beyond ±{_fmt(lim)} (in end bins)"
            ax.text(0.02, 0.95, note, transform=ax.transAxes, va="top", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            if r == 0:
                ax.set_title(str(a.classes[c]))
        axes[r, 0].set_ylabel(label + "\ncount", fontsize=8)
    names = list(b.meta_names)
    y = np.arange(len(names))
    lim = float(np.nanmax(np.abs(b.meta))) if b.meta.size else 1.0
    for c in range(k):
        ax = axes[2, c]
        w = b.meta[c]
        ax.barh(y, w, color=np.where(w >= 0, "tab:green", "tab:red"))
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlim(-1.05 * lim, 1.05 * lim)
        ax.tick_params(labelsize=7)
    axes[2, 0].set_yticks(y, names, fontsize=7)  # the row shares its y axis
    axes[2, 0].invert_yaxis()  # first metadata column on top
    axes[2, 0].set_ylabel("metadata weights\n(fused)", fontsize=8)
    axes[2, k - 1].set_xlabel("weight", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_fig6(
    frame: pd.DataFrame,
    *,
    value: str = "weight",
    run_col: str = "run",
    max_cols: int = 8,
) -> Any:
    """The paper's Fig. 6: metadata weights per class (rows) across runs/backbones (columns).

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`fusion_utils.interpret.weights.weights_frame` of several fused classifiers
        concatenated, with a ``run`` column naming each (backbone, mode, augmentation); only the
        ``metadata`` block is drawn.
    value : {"weight", "std_weight"}
        Raw or standardised weights.
    run_col : str
        Column that names the run.
    max_cols : int
        At most this many runs are drawn (the first ones in order of appearance).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if value not in frame.columns:
        raise KeyError(f"no column {value!r}; pass value='weight' or 'std_weight'")
    meta = frame[frame["block"] == "metadata"]
    if meta.empty:
        raise ValueError("no metadata weights in frame: pass weights_frame() of fused classifiers")
    runs = list(dict.fromkeys(meta[run_col]))[:max_cols]
    classes = list(dict.fromkeys(meta["class"]))
    features = list(dict.fromkeys(meta["feature"]))
    fig, axes = plt.subplots(len(classes), len(runs),
                             figsize=(2.4 * len(runs) + 1.4,
                                      1.1 * len(classes) * max(1, len(features) / 4) + 1),
                             squeeze=False, sharex=True, sharey=True, constrained_layout=True)
    lim = float(np.nanmax(np.abs(meta[value]))) or 1.0
    y = np.arange(len(features))
    for i, cls in enumerate(classes):
        for j, run in enumerate(runs):
            ax = axes[i, j]
            sub = meta[(meta["class"] == cls) & (meta[run_col] == run)].set_index("feature")
            w = sub[value].reindex(features).to_numpy(dtype=float)
            ax.barh(y, w, color=np.where(w >= 0, "tab:green", "tab:red"))
            ax.axvline(0, color="k", lw=0.6)
            ax.set_xlim(-1.05 * lim, 1.05 * lim)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(str(run), fontsize=8)
            if j == 0:
                ax.set_ylabel(str(cls))
    axes[0, 0].set_yticks(y, features, fontsize=7)
    axes[0, 0].invert_yaxis()
    for ax in axes[-1]:
        ax.set_xlabel("standardised weight" if value == "std_weight" else "weight", fontsize=8)
    return fig


def plot_raw_vs_standardised(fused: ClassifierWeights) -> Any:
    """Heat maps of the metadata weights per class: raw (left) vs standardised (right).

    The right panel is ``weight x feature std`` (the logit change for one standard deviation of
    the input), so columns measured in large units stop looking small, and vice versa. A third
    panel gives the median ``|weight|`` of each block, raw and standardised, to show how much of
    the image/metadata gap is a matter of units.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    blocks = fused.blocks
    std = fused.standardised
    mask = ~np.char.startswith(np.asarray(fused.feature_names, dtype=str), "img.")
    raw_meta = pd.DataFrame(blocks.meta, index=blocks.classes, columns=blocks.meta_names)
    std_meta = pd.DataFrame(std[:, mask], index=blocks.classes, columns=blocks.meta_names)
    fig, axes = plt.subplots(1, 3, figsize=(4 + 0.9 * 2 * len(blocks.meta_names), 3.6),
                             gridspec_kw={"width_ratios": [1, 1, 0.7]}, constrained_layout=True)
    for ax, df, title in ((axes[0], raw_meta, "raw weight"),
                          (axes[1], std_meta, "standardised weight (w x std)")):
        lim = float(np.nanmax(np.abs(df.to_numpy()))) or 1.0
        sns.heatmap(df, ax=ax, cmap="RdBu_r", vmin=-lim, vmax=lim, center=0, annot=True,
                    fmt=".2g", annot_kws={"fontsize": 6}, cbar=False)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    summary = pd.DataFrame({
        "block": ["image", "metadata", "image", "metadata"],
        "scale": ["raw", "raw", "standardised", "standardised"],
        "median |w|": [np.median(np.abs(blocks.image)) if blocks.image.size else np.nan,
                       np.median(np.abs(blocks.meta)),
                       np.median(np.abs(std[:, ~mask])) if (~mask).any() else np.nan,
                       np.median(np.abs(std[:, mask]))],
    })
    sns.barplot(summary, x="scale", y="median |w|", hue="block", ax=axes[2])
    axes[2].set_yscale("log")
    axes[2].set_title("median |weight| per block", fontsize=9)
    axes[2].set_xlabel("")
    axes[2].set_ylabel("median |weight|", fontsize=8)
    axes[2].tick_params(labelsize=7)
    axes[2].legend(fontsize=7, title="block", title_fontsize=7, loc="lower right")
    return fig


def plot_importance(permutation: pd.DataFrame, ablation: pd.DataFrame | None = None) -> Any:
    """Permutation importance (left) and drop-column ablation (right) per metadata column.

    Parameters
    ----------
    permutation : pandas.DataFrame
        :func:`fusion_utils.interpret.importance.grouped_permutation_importance` output.
    ablation : pandas.DataFrame, optional
        :func:`fusion_utils.interpret.importance.drop_column_ablation` output.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = 1 if ablation is None else 2
    order = list(permutation["feature"])
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 0.45 * len(order) + 1.6), squeeze=False,
                             sharey=True, constrained_layout=True)
    y = np.arange(len(order))
    ax = axes[0, 0]
    ax.barh(y, permutation["importance_mean"], xerr=permutation["importance_std"],
            color="tab:purple", alpha=0.8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(y, order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("drop in macro AUROC when shuffled", fontsize=8)
    ax.set_title("permutation importance (test split)", fontsize=9)
    if ablation is not None:
        ab = ablation.set_index("feature").reindex(order)
        err = np.vstack([ab["delta"] - ab["ci_low"], ab["ci_high"] - ab["delta"]]).clip(min=0)
        ax = axes[0, 1]
        ax.barh(y, ab["delta"], xerr=err, color="tab:cyan", alpha=0.9)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel("macro AUROC lost when refitted without it", fontsize=8)
        ax.set_title("drop-column ablation (95% bootstrap CI)", fontsize=9)
    return fig


def plot_auroc_intervals(
    table: pd.DataFrame,
    *,
    y: str = "column_set",
    hue: str = "scaling",
    order: Sequence[str] | None = None,
) -> Any:
    """Macro AUROC with its confidence interval per column set (chapter 07).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``y``, ``hue``, ``auroc``, ``ci_low``, ``ci_high``.
    y, hue : str
        Row variable and colour variable.
    order : sequence of str, optional
        Row order (default: order of appearance).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    for col in (y, hue, "auroc", "ci_low", "ci_high"):
        if col not in table.columns:
            raise KeyError(f"table lacks {col!r}; it has {list(table.columns)}")
    rows = list(order) if order is not None else list(dict.fromkeys(table[y]))
    hues = list(dict.fromkeys(table[hue]))
    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(rows) * max(1, len(hues)) + 1.4),
                           constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.7 / max(1, len(hues))
    for h, hv in enumerate(hues):
        sub = table[table[hue] == hv].set_index(y).reindex(rows)
        pos = np.arange(len(rows)) + (h - (len(hues) - 1) / 2) * step
        err = np.vstack([sub["auroc"] - sub["ci_low"], sub["ci_high"] - sub["auroc"]]).clip(min=0)
        ax.errorbar(sub["auroc"], pos, xerr=err, fmt="o", capsize=3, color=colors[h % len(colors)],
                    label=str(hv))
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(np.arange(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlabel("macro AUROC (95% bootstrap CI)")
    if len(hues) > 1:
        ax.legend(title=hue, fontsize=8)
    return fig


def plot_per_class_auroc(per_class: pd.DataFrame, title: str | None = None) -> Any:
    """Heatmap of one-vs-rest AUROC: rows models, columns classes, colour from chance to 1.

    Parameters
    ----------
    per_class : pandas.DataFrame
        Models x classes AUROC (e.g. rows of
        :func:`fusion_utils.evaluation.metrics.one_vs_rest_auroc`).
    title : str, optional
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.1 * per_class.shape[1] + 3, 0.5 * per_class.shape[0] + 1.2),
                           constrained_layout=True)
    sns.heatmap(per_class.astype(float), annot=True, fmt=".2f", vmin=0.5, vmax=1.0,
                cmap="viridis", ax=ax, cbar_kws={"label": "AUROC"})
    ax.set_title(title or "one-vs-rest AUROC per class")
    return fig


def note_figure(message: str) -> Any:
    """A small figure that says why a figure could not be drawn (its caption stays valid)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
    ax.set_axis_off()
    return fig
