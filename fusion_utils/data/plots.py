"""Figure helpers shared by the notebooks, grouped by stage.

Each helper draws one kind of figure with matplotlib/seaborn and returns the ``Figure`` (or the
``Axes`` it drew on), so a notebook cell stays one call plus a caption in prose. Matplotlib and
seaborn are imported inside the functions: importing this module is cheap.

Stages
------
1. Data preparation (notebook 01): :func:`plot_class_balance`, :func:`plot_metadata_by_class`,
   :func:`plot_ecg`, :func:`plot_example_images`, :func:`plot_split_counts`.

Add helpers for later stages under their own section header below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "metadata_kind",
    "plot_class_balance",
    "plot_ecg",
    "plot_example_images",
    "plot_metadata_by_class",
    "plot_split_counts",
]


# ============================================================================================
# Stage 1: data preparation (notebook 01)
# ============================================================================================

def _classes(df: pd.DataFrame, classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        return list(classes)
    return list(df.attrs.get("classes") or sorted(df["label"].unique()))


def plot_class_balance(
    df: pd.DataFrame,
    classes: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Bar chart of records per class (class order), each bar labelled with count and share."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = _classes(df, classes)
    counts = df["label"].value_counts().reindex(order, fill_value=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(order) + 2, 3.2))
    sns.barplot(x=counts.index, y=counts.to_numpy(), order=order, ax=ax, color="C0")
    total = max(int(counts.sum()), 1)
    for i, n in enumerate(counts):
        ax.annotate(f"{n}\n{n / total:.0%}", (i, n), ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="class", ylabel="records", title=title or f"Class balance (n = {total})")
    ax.margins(y=0.25)
    return ax


def metadata_kind(values: pd.Series, max_categories: int = 12) -> str:
    """How :func:`plot_metadata_by_class` shows a column: ``numeric``, ``date`` or ``categorical``.

    Numbers are numeric unless they look like codes: integers with at most ``max_categories``
    distinct values spanning fewer than ``2 * max_categories`` (PTB-XL's sex 0/1 or nurse
    0-11, but not a handful of heights 174-191). Text that parses as dates is ``date`` (shown as
    the year); the rest is categorical.
    """
    v = values.dropna()
    if len(v) == 0:
        return "categorical"
    if pd.api.types.is_bool_dtype(v):
        return "categorical"
    if pd.api.types.is_numeric_dtype(v):
        integer = bool(np.all(np.mod(v.to_numpy(dtype=float), 1) == 0))
        span = float(v.max() - v.min())
        coded = integer and v.nunique() <= max_categories and span < 2 * max_categories
        return "categorical" if coded else "numeric"
    if pd.api.types.is_datetime64_any_dtype(v):
        return "date"
    sample = v.astype(str).head(50)
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    if parsed.notna().mean() > 0.9 and sample.str.contains(r"\d{4}-\d{2}-\d{2}").mean() > 0.9:
        return "date"
    return "categorical"


def plot_metadata_by_class(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    *,
    max_categories: int = 8,
    ncols: int = 2,
) -> Figure:
    """One panel per metadata column, split by class.

    Numeric columns (age, height, ...) and dates (as the year) are box plots per class; the
    fraction of missing values per class is printed under each box. Categorical columns (sex,
    localization, device, ...) are heat maps of the share of each category within each class
    (columns sum to 1), the ``max_categories`` most common categories kept and the rest pooled
    as ``other``; missing values are a category of their own (``missing``).

    Parameters
    ----------
    df : pandas.DataFrame
        A manifest (``label`` and ``meta.*`` columns) or any table with ``label``.
    columns : sequence of str, optional
        Columns to show (default: the ``meta.`` columns).
    classes : sequence of str, optional
        Class order (default: ``df.attrs["classes"]``).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = _classes(df, classes)
    cols = list(columns) if columns is not None else [c for c in df.columns
                                                      if str(c).startswith("meta.")]
    if not cols:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no metadata columns selected", ha="center", va="center")
        return fig
    nrows = int(np.ceil(len(cols) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=False):
        name = str(col).removeprefix("meta.")
        kind = metadata_kind(df[col], max_categories)
        if kind in ("numeric", "date"):
            values = (pd.to_datetime(df[col], errors="coerce", format="mixed").dt.year
                      if kind == "date" else pd.to_numeric(df[col], errors="coerce"))
            data = pd.DataFrame({"label": df["label"].to_numpy(), name: values.to_numpy()})
            sns.boxplot(data=data, x="label", y=name, order=order, ax=ax, color="C0",
                        fliersize=2)
            missing = data[name].isna().groupby(data["label"]).mean().reindex(order)
            ax.set_xticks(range(len(order)),
                          [f"{c}\n{m:.0%} missing" if m > 0 else c
                           for c, m in zip(order, missing.fillna(0), strict=True)],
                          fontsize=8)
            ax.set(xlabel="", ylabel=name + (" (year)" if kind == "date" else ""))
        else:
            values = df[col].astype(object).where(df[col].notna(), "missing").astype(str)
            top = values.value_counts().index[:max_categories]
            values = values.where(values.isin(top), "other")
            share = pd.crosstab(values, df["label"], normalize="columns").reindex(
                columns=order, fill_value=0.0)
            sns.heatmap(share, ax=ax, cmap="Blues", vmin=0, vmax=1, annot=len(share) <= 12,
                        fmt=".2f", annot_kws={"fontsize": 7}, cbar=False)
            ax.set(xlabel="", ylabel=name)
            ax.tick_params(axis="y", labelsize=8, rotation=0)
        ax.set_title(name)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_ecg(
    signal: np.ndarray,
    leads: Sequence[str] | None = None,
    fs: float = 100.0,
    *,
    title: str | None = None,
    seconds: float | None = None,
) -> Figure:
    """A 12-lead ECG as two columns of six leads (I-AVF, V1-V6), in mV against seconds.

    Parameters
    ----------
    signal : numpy.ndarray
        Shape ``(n_samples, n_leads)``, in mV (:func:`fusion_utils.data.ptbxl.load_signal`).
    leads : sequence of str, optional
        Lead names (default :data:`fusion_utils.data.ptbxl.LEADS`).
    fs : float
        Sampling rate in Hz.
    seconds : float, optional
        Show only the first ``seconds``.
    """
    import matplotlib.pyplot as plt

    from fusion_utils.data.ptbxl import LEADS

    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ValueError(f"signal must be (n_samples, n_leads), got shape {signal.shape}")
    names = list(leads or LEADS)[: signal.shape[1]]
    n = signal.shape[0] if seconds is None else min(signal.shape[0], int(seconds * fs))
    t = np.arange(n) / fs
    rows = int(np.ceil(len(names) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(12, 1.15 * rows + 0.8), sharex=True, sharey=True,
                             squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k % rows, k // rows]
        ax.plot(t, signal[:n, k], lw=0.8, color="k")
        ax.text(0.005, 0.8, name, transform=ax.transAxes, fontsize=9, fontweight="bold")
        ax.grid(True, lw=0.3, alpha=0.6)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mV", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_example_images(
    paths_by_class: Mapping[str, Sequence[str | os.PathLike[str]]],
    *,
    n_per_class: int = 3,
    size: float = 2.0,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """A grid of example images: one row per class, up to ``n_per_class`` images each."""
    import matplotlib.pyplot as plt

    from .ham10000 import load_image

    classes = list(paths_by_class)
    fig, axes = plt.subplots(len(classes), n_per_class, squeeze=False,
                             figsize=(size * 1.33 * n_per_class, size * len(classes)))
    for r, cls in enumerate(classes):
        paths = list(paths_by_class[cls])[:n_per_class]
        for c in range(n_per_class):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(paths):
                ax.imshow(load_image(paths[c]))
            if c == 0:
                ax.set_ylabel((titles or {}).get(cls, cls), rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_split_counts(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Stacked bars of records per class and split.

    The counts come from :func:`fusion_utils.data.manifest.split_table`.
    """
    import matplotlib.pyplot as plt

    data = table.drop(index="total", errors="ignore").drop(columns="total", errors="ignore")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(data) + 2, 3.2))
    data.plot(kind="bar", stacked=True, ax=ax, rot=0, width=0.7)
    ax.set(xlabel="class", ylabel="records", title="Records per class and split")
    ax.legend(title="split", fontsize=8)
    return ax

