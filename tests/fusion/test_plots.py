"""The fusion chapter's training-curve figure."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils.fusion.plots import plot_loss_curves


class _Fitted:
    def __init__(self, curve):
        self.loss_curve_ = curve


def test_loss_curves_are_distances_to_the_final_value():
    fig = plot_loss_curves({"image": _Fitted([3.0, 2.0, 1.5]), "fused": _Fitted([1.0, 0.5])})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [ln.get_label() for ln in ax.lines] == ["image", "fused"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.5, 0.5, 1e-12])
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [0, 1])
    with pytest.raises(ValueError, match="'x' has no loss_curve_"):
        plot_loss_curves({"x": object()})
