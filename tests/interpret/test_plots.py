"""Figures of the interpretability chapters that the other tests do not draw."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_utils.interpret.plots import plot_per_class_auroc


def test_per_class_auroc_heatmap_cells_and_scale():
    table = pd.DataFrame([[0.5, 0.75], [1.0, 0.625]], index=["m1", "m2"], columns=["a", "b"])
    fig = plot_per_class_auroc(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.75", "1.00", "0.62"]
    mesh = ax.collections[0]
    assert mesh.get_clim() == (0.5, 1.0)
    np.testing.assert_allclose(np.asarray(mesh.get_array()).ravel(), table.to_numpy().ravel())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
