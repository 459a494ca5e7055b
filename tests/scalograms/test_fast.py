"""The fast Morse path (fusion_utils.scalograms._fast): its plan of FFT tiers and band-limited
rows, checked row by row against the float64 reference, and its threads and buffers."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils.scalograms import _fast as F
from fusion_utils.scalograms import morse as S
from tests.scalograms.test_morse import FS, N, _random_leads, _rel_err


def _row_rel_err(fast: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per row: largest absolute difference relative to that row's maximum (rows on axis -2)."""
    diff = np.abs(np.asarray(fast, np.float64) - ref).max(axis=-1)
    return diff / np.abs(ref).max(axis=-1)


def test_fast_path_plan_covers_every_row_once():
    pytest.importorskip("torch")
    plan = F._torch_plan(N, 3.0, 60.0, 10)
    # The narrow, low-frequency rows go through matrix products, the wide ones through FFTs.
    assert 0 < plan.n_fft_rows < plan.n_scales == 71
    covered = list(range(plan.n_fft_rows))
    for g in plan.groups:
        r0, r1 = g.rows
        covered += list(range(r0, r1))
        width = g.basis.shape[0]
        assert g.filt.shape == (r1 - r0, width) and g.gather.shape == ((r1 - r0) * width,)
        # Each band holds the whole filter down to BAND_FLOOR of its peak (2).
        bank = S.morse_filter_bank(N)
        bins = g.gather.numpy().reshape(r1 - r0, width)
        for i, row in enumerate(range(r0, r1)):
            live = g.filt[i].numpy() > 0
            np.testing.assert_allclose(g.filt[i].numpy()[live], bank[row][bins[i][live]], rtol=1e-6)
            # float64: the band keeps all but 1e-8 of the filter's mass
            assert bank[row][bins[i][live]].sum() == pytest.approx(bank[row].sum(), rel=1e-8)
    assert covered == list(range(71))


def test_band_limited_rows_match_the_reference_row_by_row():
    x = _random_leads((3, N), seed=11)
    fast, _ = S.morse_scalogram(x)
    ref, _ = S.morse_scalogram(x, backend="numpy")
    # Relative to each row's own maximum, so the small low-frequency rows are checked too.
    assert _row_rel_err(fast, ref).max() < 1e-5


def test_unit_sinusoid_on_a_band_limited_row():
    freqs = S.morse_frequencies(N, FS)
    plan = F._torch_plan(N, 3.0, 60.0, 10)
    k = plan.groups[0].rows[0] + 2  # a row computed by a matrix product (0.75 Hz)
    t = np.arange(N) / FS
    x = np.cos(2 * np.pi * freqs[k] * t + 0.3)
    fast, _ = S.morse_scalogram(x)
    ref, _ = S.morse_scalogram(x, backend="numpy")
    assert fast[k, 450:550].max() == pytest.approx(ref[k, 450:550].max(), rel=1e-5)
    assert ref[k, 450:550].max() == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("n", [7, 64, 1000, 5000])
def test_fast_path_on_other_lengths(n):
    x = _random_leads((2, n), seed=n)
    fast, _ = S.morse_scalogram(x)
    ref, _ = S.morse_scalogram(x, backend="numpy")
    assert _rel_err(fast, ref) < 1e-5


def test_threads_chunks_and_reused_buffers_give_identical_results():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_random_leads((5, 12, N), seed=12).astype(np.float32))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial, _ = S.morse_scalogram(x, chunk=4)
        torch.set_num_threads(2)
        parallel, _ = S.morse_scalogram(x, chunk=4)  # two workers, each its own buffers
        again, _ = S.morse_scalogram(x[:1], chunk=3)  # buffers of another shape, then reused
        parallel2, _ = S.morse_scalogram(x, chunk=4)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(serial, parallel) and torch.equal(parallel, parallel2)
    assert torch.allclose(again, serial[:1], rtol=0, atol=1e-6 * float(serial.max()))


def test_fft_tiers_use_short_windows_only_where_the_wavelet_is_short():
    pytest.importorskip("torch")
    plan = F._torch_plan(N, 3.0, 60.0, 10)
    lengths = [t.length for t in plan.tiers]
    assert lengths[0] == plan.m == 2000 and len(lengths) >= 2 and min(lengths) < 1500
    support = F._half_support(S.morse_filter_bank(N)[: plan.n_fft_rows], plan.m)
    assert support[0] >= 900  # the top row's filter is cut at Nyquist: a long, slow tail
    for tier in plan.tiers:
        r0, r1 = tier.rows
        assert tier.offset == (tier.length - N) // 2
        if tier.length < plan.m:
            # the window reaches at least the wavelet's half support past both ends of the span
            assert support[r0:r1].max() <= tier.offset
            assert tier.length - tier.offset - N >= support[r0:r1].max()
        np.testing.assert_array_equal(  # the window is the reflection-padded signal's middle
            tier.segment.numpy(),
            S._pad_index(N)[plan.pad - tier.offset : plan.pad - tier.offset + tier.length])


@pytest.mark.parametrize(("at_least", "expected"), [(1000, 1024), (1024, 1024), (1081, 1152),
                                                    (1250, 1280), (1601, 1620), (7, 8)])
def test_fast_fft_lengths(at_least, expected):
    assert F._fast_fft_length(at_least) == expected


def test_fft_tiers_dynamic_programme():
    # Three rows need the exact length, ten a short one: two runs, not one at M.
    assert F._fft_tiers([2000] * 3 + [1100] * 10, 2000) == [(0, 3, 2000), (3, 13, 1152)]
    # One row alone is not worth its own length.
    assert F._fft_tiers([2000] * 3 + [1100], 2000) == [(0, 4, 2000)]
