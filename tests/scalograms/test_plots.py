"""Figures of the scalogram chapter: axes in Hz, one panel per lead, montages as given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fusion_utils.scalograms import plots
from fusion_utils.scalograms.morse import morse_frequencies


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_frequency_ticks_interpolate_rows_on_log_frequency() -> None:
    freqs = morse_frequencies(1000, fs=100.0)  # descending, 43.4 to 0.34 Hz, 10 voices/octave
    pos, labels = plots.frequency_ticks(freqs)
    assert labels == ["0.5", "1", "2", "5", "10", "20", "40"]
    for p, text in zip(pos, labels, strict=True):
        below = int(np.floor(p))  # the tick lies between two rows whose frequencies bracket it
        assert freqs[below] >= float(text) >= freqs[below + 1]
    # one octave is ten rows: 1 Hz sits ten rows below 2 Hz, 20 Hz ten rows above 10 Hz
    assert pos[1] - pos[2] == pytest.approx(10.0, abs=1e-6)
    assert pos[4] - pos[5] == pytest.approx(10.0, abs=1e-6)


def test_lead_scalograms_one_panel_per_lead() -> None:
    freqs = morse_frequencies(200, fs=100.0)
    mag = np.random.default_rng(0).random((12, len(freqs), 200))
    fig = plots.plot_lead_scalograms(mag, freqs, fs=100.0)
    panels = {ax.texts[0].get_text(): ax for ax in fig.axes if ax.images}
    assert len(panels) == 12
    np.testing.assert_array_equal(panels["aVR"].images[0].get_array(), mag[3])
    np.testing.assert_array_equal(panels["V6"].images[0].get_array(), mag[11])


def test_montages_shown_as_given_and_empty_refused() -> None:
    img = np.zeros((224, 224, 3), dtype=np.uint8)
    img[:10] = 255
    fig = plots.plot_montages({"record 1": img, "record 2": img[::-1]})
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["record 1", "record 2"]
    np.testing.assert_array_equal(shown[1].images[0].get_array(), img[::-1])
    with pytest.raises(ValueError, match="images is empty"):
        plots.plot_montages({})


def test_morse_wavelet_figure_draws_the_filter_bank() -> None:
    fig = plots.plot_morse_wavelet(n_samples=1000, fs=100.0)
    bank = [ax for ax in fig.axes if "filter bank" in ax.get_title()]
    assert len(bank) == 1
    n_filters = len(morse_frequencies(1000, fs=100.0))
    assert f"{n_filters} filters" in bank[0].get_title()
