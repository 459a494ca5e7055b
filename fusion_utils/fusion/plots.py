"""Figures of the fusion chapters: the classifiers' training curves, DVME's attention.

Every function returns a :class:`matplotlib.figure.Figure` and imports matplotlib lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_attention_by_class", "plot_loss_curves"]


def plot_loss_curves(models: Mapping[str, Any]) -> Any:
    """Distance of the objective from its final value after each epoch, log scale.

    Parameters
    ----------
    models : mapping
        Name -> fitted classifier with ``loss_curve_`` (one objective value per epoch), e.g.
        the image-only and the fused ``SoftmaxClassifier``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, model in models.items():
        curve = getattr(model, "loss_curve_", None)
        curve = np.asarray([] if curve is None else curve, dtype=float)
        if curve.size == 0:
            raise ValueError(f"classifier {name!r} has no loss_curve_: pass fitted classifiers")
        ax.semilogy(np.arange(len(curve)), curve - curve.min() + 1e-12, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("objective - final objective")
    ax.legend(title="classifier")
    fig.tight_layout()
    return fig


def plot_attention_by_class(attention: Any, title: str = "") -> Any:
    """Heat maps of the attention each source receives, per true class, one panel per model.

    Parameters
    ----------
    attention : DataFrame
        ``model, class, source, attention`` (:func:`fusion_utils.fusion.meta_embedding.\
attention_by_class` per DVME model); classes and sources keep their order of appearance.
    title : str
        Figure title (e.g. the data).
    """
    import matplotlib.pyplot as plt

    need = {"model", "class", "source", "attention"}
    if not need <= set(attention.columns):
        raise ValueError(f"attention table lacks {sorted(need - set(attention.columns))}")
    models = list(dict.fromkeys(attention["model"]))
    if not models:
        raise ValueError("attention table is empty")
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models) + 0.8, 3.4),
                             squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = attention[attention["model"] == model]
        classes = list(dict.fromkeys(part["class"]))
        sources = list(dict.fromkeys(part["source"]))
        grid = part.pivot_table(index="class", columns="source", values="attention",
                                aggfunc="first").loc[classes, sources].to_numpy(float)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(sources)), [s.replace("efficientnet_", "") for s in sources],
                      rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_title(model, fontsize=10)
    axes[0][0].set_ylabel("true class")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="mean attention received")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
