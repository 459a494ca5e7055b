"""Figures of the feature-extraction chapter, drawn from small known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusion_utils.features.plots import (
    plot_augmented_views,
    plot_feature_pca,
    plot_finetune_history,
)


class _Views:
    """A stand-in dataset: image i is uniform grey i/10; augmented views add the epoch/10."""

    def __init__(self) -> None:
        self.epoch = 0
        self.calls: list[tuple[int, bool, int]] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def image(self, i: int, augmented: bool) -> torch.Tensor:
        self.calls.append((i, augmented, self.epoch))
        value = i / 10 + (self.epoch / 10 if augmented else 0.0)
        return torch.full((3, 4, 5), value)


def test_augmented_views_grid_order_and_labels():
    ds = _Views()
    fig = plot_augmented_views(ds, [1, 3], ["MI", "CD"], n_augmented=2, title="t")
    axes = np.array(fig.axes).reshape(2, 3)
    assert [a.get_title() for a in axes[0]] == ["input", "augmented #1", "augmented #2"]
    assert [a.get_ylabel() for a in axes[:, 0]] == ["MI", "CD"]
    # channels-last image of record 3, augmented at epoch 1: grey 0.3 + 0.1
    img = axes[1, 2].images[0].get_array()
    assert img.shape == (4, 5, 3) and np.allclose(img, 0.4)
    assert ds.calls[:3] == [(1, False, 0), (1, True, 0), (1, True, 1)]
    assert fig._suptitle.get_text() == "t"


def test_finetune_history_marks_the_kept_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4],
                            "val_loss": [0.9, 0.7, 0.8], "val_accuracy": [0.5, 0.6, 0.55]})
    fig = plot_finetune_history(history, kept_epoch=2)
    kept = [ln for ln in fig.axes[0].lines if ln.get_label() == "kept"]
    assert len(kept) == 1 and list(kept[0].get_xdata()) == [2]
    assert list(kept[0].get_ydata()) == [0.7]
    assert list(fig.axes[1].lines[0].get_ydata()) == [0.5, 0.6, 0.55]
    with pytest.raises(ValueError, match="val_accuracy"):
        plot_finetune_history(history.drop(columns="val_accuracy"))


def test_feature_pca_axes_give_the_variance_shares():
    rng = np.random.default_rng(0)
    # two standardised directions: the first carries 3 of the 4 units of variance
    X = np.c_[rng.normal(size=400), rng.normal(size=400)]
    X = np.c_[X[:, 0], X[:, 0] + 0.0 * X[:, 1], X[:, 0], X[:, 1]]
    labels = np.where(X[:, 0] > 0, "a", "b")
    split = np.array(["train", "val", "test", "train"] * 100)
    fig = plot_feature_pca(X, labels, split, classes=["b", "a", "zzz"], title="pca")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC 1 (7") and "% of the variance" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("PC 2 (2")
    assert ax.get_title() == "pca"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend.index("b") < legend.index("a") and "zzz" not in legend
