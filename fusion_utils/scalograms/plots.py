"""Figures of the scalogram chapter (notebook 02): the wavelet, per-lead scalograms, montages.

Each helper returns the matplotlib ``Figure``; matplotlib is imported inside the functions.
Frequency axes are in Hz and logarithmic, as the scales are (rows of a scalogram are spaced by
``2^(1/voices_per_octave)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fusion_utils.scalograms.montage import LEADS, lead_grid, tile_boxes
from fusion_utils.scalograms.morse import (
    morse_filter_bank,
    morse_frequencies,
    morse_scales,
    morse_wavelet,
    morse_wavelet_time,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "frequency_ticks",
    "plot_frequency_profiles",
    "plot_lead_scalograms",
    "plot_montages",
    "plot_morse_wavelet",
]

_NICE_HZ = (0.5, 1, 2, 5, 10, 20, 40)


def frequency_ticks(freqs: np.ndarray, candidates: Sequence[float] = _NICE_HZ
                    ) -> tuple[np.ndarray, list[str]]:
    """Row positions (fractional) and labels of round frequencies on a log-spaced row axis."""
    freqs = np.asarray(freqs, dtype=float)
    rows = np.arange(len(freqs))
    # rows run high -> low frequency; interpolate the row index on log frequency
    logf = np.log(freqs[::-1])
    keep = [f for f in candidates if freqs.min() <= f <= freqs.max()]
    pos = np.interp(np.log(keep), logf, rows[::-1]) if keep else np.array([])
    return pos, [f"{f:g}" for f in keep]


def _log_hz_axis(ax: Axes, lo: float, hi: float) -> None:
    """Logarithmic frequency axis with round tick labels (0.5, 1, 2, 5, ... Hz)."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [f for f in (0.2, *_NICE_HZ) if lo <= f <= hi]
    ax.set_xticks(ticks, [f"{f:g}" for f in ticks])
    ax.minorticks_off()


def plot_morse_wavelet(
    gamma: float = 3.0,
    time_bandwidth: float = 60.0,
    *,
    n_samples: int = 1000,
    fs: float = 100.0,
    voices_per_octave: int = 10,
    show_hz: float = 10.0,
) -> Figure:
    """The Morse wavelet in time (at the scale whose centre frequency is ``show_hz``) and the
    whole filter bank in frequency, for signals of ``n_samples`` at ``fs``."""
    import matplotlib.pyplot as plt

    w = morse_wavelet(gamma, time_bandwidth)
    freqs = morse_frequencies(n_samples, fs, gamma, time_bandwidth, voices_per_octave)
    scales = morse_scales(n_samples, gamma, time_bandwidth, voices_per_octave)
    k = int(np.argmin(np.abs(freqs - show_hz)))
    t, psi = morse_wavelet_time(gamma, time_bandwidth, scale=float(scales[k]), n_samples=512)
    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(12, 3.6))
    seconds = t / fs
    window = np.abs(seconds) <= 6 * w.sigma_t * scales[k] / fs / 2 + 0.05
    ax_t.plot(seconds[window], psi.real[window], lw=1.0, label="real part")
    ax_t.plot(seconds[window], psi.imag[window], lw=1.0, label="imaginary part")
    ax_t.plot(seconds[window], np.abs(psi)[window], lw=1.4, color="k", label="modulus")
    ax_t.set(xlabel="time (s)", ylabel="amplitude",
             title=f"wavelet at {freqs[k]:.1f} Hz (scale {scales[k]:.2f})")
    ax_t.legend(fontsize=8, loc="upper right")
    bank = morse_filter_bank(n_samples, gamma, time_bandwidth, voices_per_octave)
    m = n_samples + 2 * (n_samples // 2)
    hz = np.arange(bank.shape[1]) * fs / m
    for row in range(0, len(bank), max(1, voices_per_octave)):
        ax_f.plot(hz[1:], bank[row, 1:], lw=1.0)
    ax_f.axhline(2.0, color="grey", lw=0.6, ls="--")
    ax_f.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax_f.axvline(fs / 2, color="grey", lw=0.6)
    _log_hz_axis(ax_f, freqs[-1] / 3, fs / 2 * 1.1)
    ax_f.set(xlabel="frequency (Hz)", ylabel="filter gain", ylim=(0, 2.15),
             title=f"filter bank: {len(freqs)} filters, every {voices_per_octave}th drawn")
    ax_f.text(fs / 2, 1.02, " half peak\n at Nyquist", fontsize=7, va="bottom", ha="right")
    fig.suptitle(f"generalized Morse wavelet, gamma = {w.gamma:g}, beta = {w.beta:g} "
                 f"(time-bandwidth {time_bandwidth:g})")
    fig.tight_layout()
    return fig


def plot_lead_scalograms(
    mag: np.ndarray,
    freqs: np.ndarray,
    fs: float = 100.0,
    *,
    leads: Sequence[str] = LEADS,
    title: str | None = None,
    cmap: str = "jet",
) -> Figure:
    """The 12 per-lead |W| images (6 rows x 2 columns), time in seconds, frequency in Hz.

    Each panel has its own colour scale (as the per-lead montage does).
    """
    import matplotlib.pyplot as plt

    mag = np.asarray(mag)
    if mag.ndim != 3 or mag.shape[0] != len(leads) or mag.shape[1] != len(freqs):
        raise ValueError(f"mag must have shape ({len(leads)}, {len(freqs)}, n_samples), "
                         f"got {mag.shape}")
    seconds = mag.shape[-1] / fs
    rows = math.ceil(len(leads) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 1.35 * rows + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    pos, labels = frequency_ticks(freqs)
    for i, name in enumerate(leads):
        ax = axes[i % rows, i // rows]
        ax.imshow(mag[i], aspect="auto", cmap=cmap, interpolation="nearest",
                  extent=(0, seconds, len(freqs) - 0.5, -0.5))
        ax.text(0.005, 0.92, name, transform=ax.transAxes, fontsize=9, fontweight="bold",
                color="white", va="top")
        ax.set_yticks(pos, labels, fontsize=7)
        ax.grid(False)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("Hz", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _label_tiles(ax: Axes, layout: str, size: int) -> None:
    grid = lead_grid(layout)
    for lead, top, _bottom, left, _right in tile_boxes(layout, size):
        if any(lead in row for row in grid):
            ax.text(left + 2, top + 2, LEADS[lead], color="white", fontsize=7,
                    fontweight="bold", va="top", ha="left")


def plot_montages(
    images: Mapping[str, np.ndarray],
    *,
    layout: str | None = None,
    ncols: int | None = None,
    size: float = 3.6,
) -> Figure:
    """Montage images side by side, titled by their keys.

    Lead names are drawn when ``layout`` is set.
    """
    import matplotlib.pyplot as plt

    if not images:
        raise ValueError("images is empty: pass a mapping title -> montage image")
    n = len(images)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3),
                             squeeze=False)
    for ax, (title, image) in zip(axes.flat, images.items(), strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.grid(False)
        if layout is not None:
            _label_tiles(ax, layout, image.shape[0])
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_frequency_profiles(
    profiles: Mapping[str, np.ndarray],
    freqs: np.ndarray,
    *,
    leads: Sequence[str] = ("II", "aVR", "V2", "V5"),
) -> Figure:
    """Time-averaged normalised |W| against frequency, one line per class, for a few leads.

    ``profiles[class]`` has shape (12, n_scales): the class-average scalogram averaged over time.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(leads), figsize=(3.2 * len(leads), 3.2), sharey=True,
                             squeeze=False)
    palette = sns.color_palette("colorblind", len(profiles))
    for ax, lead in zip(axes[0], leads, strict=True):
        i = LEADS.index(lead)
        for colour, (name, prof) in zip(palette, profiles.items(), strict=True):
            ax.plot(freqs, np.asarray(prof)[i], color=colour, lw=1.4, label=name)
        _log_hz_axis(ax, float(np.min(freqs)), float(np.max(freqs)))
        ax.set(title=f"lead {lead}", xlabel="frequency (Hz)")
    axes[0, 0].set_ylabel("mean normalised |W|")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig
