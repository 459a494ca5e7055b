"""Figures of the data chapter: what each bar, panel and trace shows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusion_utils.data import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _table() -> pd.DataFrame:
    df = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 3 + ["c"],
                       "meta.age": [50, 60, 70, np.nan, 40, 45, 30, 35, np.nan, 80],
                       "meta.sex": ["m", "f", "m", "f", "m", "m", "f", "f", "f", None]})
    df.attrs["classes"] = ["c", "b", "a"]
    return df


def test_class_balance_bars_follow_the_class_order_and_counts() -> None:
    ax = plots.plot_class_balance(_table())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c", "b", "a"]
    assert [round(p.get_height()) for p in ax.patches] == [1, 3, 6]
    assert ax.get_title() == "Class balance (n = 10)"
    assert [t.get_text() for t in ax.texts] == ["1\n10%", "3\n30%", "6\n60%"]


@pytest.mark.parametrize(("values", "kind"), [
    (pd.Series([0, 1, 1, 0]), "categorical"),              # PTB-XL sex codes
    (pd.Series([174.0, 180, 191, 165, 170]), "numeric"),     # heights
    (pd.Series(["1984-11-09 09:17:34", "1990-01-02 10:00:00"]), "date"),
    (pd.Series(["back", "face", None]), "categorical"),
    (pd.Series([np.nan, np.nan]), "categorical"),
])
def test_metadata_kind(values: pd.Series, kind: str) -> None:
    assert plots.metadata_kind(values) == kind


def test_metadata_panels_one_per_column_with_missing_shares() -> None:
    fig = plots.plot_metadata_by_class(_table())
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["age", "sex"]
    # under each box the share of missing ages in that class: a 1/6, b 1/3, c 0
    labels = [t.get_text() for t in titled[0].get_xticklabels()]
    assert labels == ["c", "b\n33% missing", "a\n17% missing"]


def test_ecg_traces_are_the_signal_in_lead_order() -> None:
    signal = np.stack([np.full(200, k, dtype=float) for k in range(12)], axis=1)
    fig = plots.plot_ecg(signal, fs=100.0, seconds=1.0)
    by_lead = {ax.texts[0].get_text(): ax.lines[0] for ax in fig.axes if ax.lines}
    # axes row by row; limb leads fill the left column, chest leads the right one
    assert list(by_lead) == ["I", "V1", "II", "V2", "III", "V3", "AVR", "V4", "AVL", "V5",
                             "AVF", "V6"]
    from fusion_utils.data.ptbxl import LEADS

    assert {name: float(line.get_ydata()[0]) for name, line in by_lead.items()} == {
        name: float(k) for k, name in enumerate(LEADS)}
    traces = list(by_lead.values())
    assert len(traces[0].get_xdata()) == 100 and traces[0].get_xdata()[-1] == pytest.approx(0.99)
    with pytest.raises(ValueError, match="n_samples, n_leads"):
        plots.plot_ecg(np.zeros(10))


def test_example_images_one_row_per_class(tmp_path) -> None:
    paths = {}
    for k, cls in enumerate(["mel", "nv"]):
        p = tmp_path / f"{cls}.jpg"
        Image.new("RGB", (8, 6), (40 * k, 0, 0)).save(p)
        paths[cls] = [p]
    fig = plots.plot_example_images(paths, n_per_class=2)
    assert len(fig.axes) == 4
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 2 and shown[0].images[0].get_array().shape == (6, 8, 3)
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["mel", "nv"]


def test_split_counts_stack_per_split() -> None:
    table = pd.DataFrame({"train": [7, 3], "val": [2, 1], "test": [1, 1], "total": [10, 5]},
                         index=pd.Index(["a", "b"], name="label"))
    table.loc["total"] = table.sum()
    ax = plots.plot_split_counts(table)
    heights = [round(p.get_height()) for p in ax.patches]
    assert heights == [7, 3, 2, 1, 1, 1]
