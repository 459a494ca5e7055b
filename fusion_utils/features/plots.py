"""Figures of the feature-extraction chapter: network inputs with augmented views, fine-tuning
curves, and the features in two principal components.

Every function returns a :class:`matplotlib.figure.Figure` and imports matplotlib lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plot_augmented_views", "plot_feature_pca", "plot_finetune_history"]


def plot_augmented_views(examples: Any, rows: Sequence[int], labels: Sequence[str], *,
                         n_augmented: int = 3, title: str | None = None) -> Any:
    """One row per record: the network input, then ``n_augmented`` augmented draws.

    Parameters
    ----------
    examples : ManifestImageDataset
        Anything with ``image(i, augmented=...)`` returning a ``(3, H, W)`` tensor in [0, 1] and
        ``set_epoch(epoch)`` (each epoch draws new augmentation parameters).
    rows : sequence of int
        Records to show.
    labels : sequence of str
        Row labels (the records' classes).
    n_augmented : int
        Augmented views per record (epochs 0, 1, ...).
    title : str, optional
    """
    import matplotlib.pyplot as plt

    ncol = n_augmented + 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2 * ncol, 2.1 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        views = [examples.image(i, augmented=False)]
        for epoch in range(n_augmented):
            examples.set_epoch(epoch)
            views.append(examples.image(i, augmented=True))
        for c, view in enumerate(views):
            ax = axes[r, c]
            ax.imshow(np.asarray(view.permute(1, 2, 0)))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("input" if c == 0 else f"augmented #{c}", fontsize=9)
        axes[r, 0].set_ylabel(str(labels[r]), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_finetune_history(history: pd.DataFrame, kept_epoch: int | None = None) -> Any:
    """Training and validation loss (left) and validation accuracy (right) per epoch.

    Parameters
    ----------
    history : pandas.DataFrame
        ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy`` (the fine-tuning history).
    kept_epoch : int, optional
        The epoch whose weights produce the features, circled.
    """
    import matplotlib.pyplot as plt

    missing = {"epoch", "train_loss", "val_loss", "val_accuracy"} - set(history.columns)
    if missing:
        raise ValueError(f"fine-tuning history lacks column(s) {sorted(missing)}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax1.plot(history["epoch"], history["val_loss"], "s-", label="validation")
    if kept_epoch is not None:
        kept = history[history["epoch"] == kept_epoch]
        ax1.plot(kept["epoch"], kept["val_loss"], "ko", ms=10, mfc="none", label="kept")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax1.legend()
    ax2.plot(history["epoch"], history["val_accuracy"], "s-", color="C1")
    ax2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="validation accuracy")
    fig.tight_layout()
    return fig


def plot_feature_pca(X: np.ndarray, labels: Sequence[str], split: Sequence[str], *,
                     classes: Sequence[str] | None = None, seed: int = 0,
                     title: str | None = None) -> Any:
    """The standardised features on their first two principal components (fitted on all rows).

    Colour is the class, marker the split; the axis labels give each component's share of the
    variance. ``sklearn.preprocessing.StandardScaler`` then ``sklearn.decomposition.PCA``.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(np.asarray(X, dtype=float))
    pca = PCA(n_components=2, random_state=seed).fit(scaled)
    coords = pca.transform(scaled)
    frame = pd.DataFrame({"PC 1": coords[:, 0], "PC 2": coords[:, 1],
                          "class": np.asarray(labels, dtype=str),
                          "split": np.asarray(split, dtype=str)})
    present = set(frame["class"])
    order = [c for c in (classes or sorted(present)) if c in present]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(data=frame, x="PC 1", y="PC 2", hue="class", hue_order=order, style="split",
                    style_order=["train", "val", "test"], s=25, alpha=0.8, ax=ax)
    explained = pca.explained_variance_ratio_ * 100
    ax.set(xlabel=f"PC 1 ({explained[0]:.1f}% of the variance)",
           ylabel=f"PC 2 ({explained[1]:.1f}%)", title=title or "")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
