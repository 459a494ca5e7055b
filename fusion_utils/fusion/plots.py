"""Figures of the fusion chapter: the classifiers' training curves.

Every function returns a :class:`matplotlib.figure.Figure` and imports matplotlib lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_loss_curves"]


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
