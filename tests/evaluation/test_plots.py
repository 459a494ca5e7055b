"""The evaluation figures: heatmap input, the paper's Fig. 4 across networks, DeLong's per-class
figure."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from fusion_utils.evaluation import plots as eval_plots
from fusion_utils.evaluation.metrics import METRICS
from fusion_utils.evaluation.significance import classwise_delong


def test_improvement_heatmap_accepts_many_configurations():
    rows = [{"metric": m, "configuration": cfg, "image": 0.7, "fused": 0.7 + 0.01 * i}
            for i, cfg in enumerate(["vgg16 BN", "vgg16 FT aug", "resnet50 BN"])
            for m in METRICS]
    frame = eval_plots.improvement_frame(pd.DataFrame(rows))
    assert frame.groupby("configuration")["improvement"].first().round(6).to_dict() == \
        {"resnet50 BN": 2.0, "vgg16 BN": 0.0, "vgg16 FT aug": 1.0}
    fig = eval_plots.improvement_heatmap(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["vgg16 BN", "vgg16 FT aug",
                                                           "resnet50 BN"]
    assert next(t.get_text() for t in ax.get_yticklabels()) == "Accuracy"
    # a tidy metrics frame (notebook 05's) gives 100 * (fused - image) of the macro means
    tidy = pd.DataFrame({"metric": ["f1", "f1"], "class": ["macro_mean"] * 2,
                         "model": ["image", "fused"], "value": [0.70, 0.80]})
    assert eval_plots.improvement_frame(tidy)["improvement"].item() == pytest.approx(10.0)


def _fig4_table() -> pd.DataFrame:
    """Eight networks; MI gains in every network with FT aug (p = 2/256), CD is mixed."""
    rows = []
    for j in range(8):
        for mode, aug, cls, d in (("ft", True, "MI", 0.01 * (j + 1)),
                                  ("ft", True, "CD", 0.01 * (j + 1) * (-1) ** j),
                                  ("bn", False, "MI", 0.0), ("bn", False, "CD", 0.0)):
            rows.append({"backbone": f"net{j}", "mode": mode, "augment": aug, "class": cls,
                         "image": 0.8, "fused": 0.8 + d})
    return pd.DataFrame(rows)


def test_fig4_boxes_are_networks_per_class_and_setup_with_across_network_stars():
    fig = eval_plots.auroc_improvement_boxplot(_fig4_table())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["MI", "CD"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BN", "FT aug"]
    # one star text: MI with FT aug (signed-rank p = 0.0078); CD alternates signs, BN is flat
    assert [t.get_text() for t in ax.texts] == ["**"]
    star = ax.texts[0]
    assert star.get_position()[0] == pytest.approx(0 + 0.2)  # second of two set-ups, class 0
    # each box holds the eight networks' points (scatter offsets in percentage points)
    mi_ft = [c for c in ax.collections if len(c.get_offsets()) == 8
             and np.allclose(sorted(c.get_offsets()[:, 1]), np.arange(1, 9))]
    assert len(mi_ft) == 1
    assert "Wilcoxon" in ax.get_title()


def test_fig4_one_network_draws_points_without_stars():
    one = _fig4_table().query("backbone == 'net0'")
    fig = eval_plots.auroc_improvement_boxplot(one)
    assert len(fig.axes[0].texts) == 0


def test_classwise_difference_points_intervals_and_delong_stars():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    y = rng.choice(classes, 300)
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    img = rng.dirichlet(np.ones(3), 300) + 0.2 * onehot
    fused = img.copy()
    fused[:, 0] += 0.6 * onehot[:, 0]  # only class a gains
    sig = classwise_delong(y, img, fused, classes)
    fig = eval_plots.classwise_auroc_difference(sig)
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_ydata(), 100 * (sig["auc_fused"] - sig["auc_image"]))
    assert [t.get_text() for t in ax.texts] == [sig.loc[0, "stars"]] == ["**"]
    assert [t.get_text() for t in ax.get_xticklabels()] == classes


def test_setup_label():
    assert eval_plots.setup_label("ft", True) == "FT aug"
    assert eval_plots.setup_label("bn", False) == "BN"
    assert eval_plots.setup_label(None, None) == "all"
