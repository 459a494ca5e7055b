"""Morse CWT: MATLAB-default constants, L1 normalisation, oracles, backends, real records.

The fast torch path's internals are tested in test_fast.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fusion_utils.scalograms import morse as S

N, FS = 1000, 100.0


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference relative to the reference's maximum."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _random_leads(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A random walk plus spikes: broadband like an ECG, with a baseline that wanders.
    x = np.cumsum(rng.standard_normal(shape), axis=-1) * 0.05
    x += (rng.random(shape) > 0.99) * 2.0
    return x


# --- the numbers in ../shared/reference/scalograms.md ---------------------------------------

def test_morse_constants_match_matlab_defaults():
    w = S.morse_wavelet(3.0, 60.0)
    assert w.beta == 20.0
    assert w.peak_frequency == pytest.approx(1.882072, abs=1e-6)
    assert w.amplitude == pytest.approx(0.005054, abs=1e-6)
    assert w.cutoff_frequency == pytest.approx(2.167664, abs=1e-6)
    assert w.sigma_t == pytest.approx(5.500774, abs=1e-6)


def test_filter_peaks_at_two_and_halves_at_cutoff():
    w = S.morse_wavelet()
    assert w.filter(np.array([w.peak_frequency]))[0] == pytest.approx(2.0, rel=1e-12)
    assert w.filter(np.array([w.cutoff_frequency]))[0] == pytest.approx(1.0, rel=1e-10)
    grid = np.linspace(-4, 8, 20001)
    response = w.filter(grid)
    assert response.max() == pytest.approx(2.0, rel=1e-6)
    assert np.all(response[grid <= 0] == 0.0)  # analytic


def test_scales_and_frequencies_for_1000_samples():
    scales = S.morse_scales(N)
    freqs = S.morse_frequencies(N, FS)
    assert len(scales) == len(freqs) == 71
    assert scales[0] == pytest.approx(0.689989, abs=1e-6)
    assert freqs[0] == pytest.approx(43.4124, abs=1e-4)
    assert freqs[-1] == pytest.approx(0.3392, abs=1e-4)
    np.testing.assert_allclose(freqs, freqs[0] * 2.0 ** (-np.arange(71) / 10), rtol=1e-12)
    # Smallest filter at half its peak at Nyquist; largest scale within N / (2 sigma_t).
    w = S.morse_wavelet()
    assert w.filter(np.array([scales[0] * np.pi]))[0] == pytest.approx(1.0, rel=1e-10)
    assert scales[-1] <= N / (2 * w.sigma_t) < scales[-1] * 2 ** 0.1
    # cwtfreqbounds(1000) in MATLAB: 0.0033 / 0.4341 cycles per sample.
    assert freqs[-1] / FS == pytest.approx(0.0034, abs=1e-4)
    assert freqs[0] / FS == pytest.approx(0.4341, abs=1e-4)


def test_scale_count_follows_length_and_voices():
    assert len(S.morse_scales(N, voices_per_octave=12)) == 85  # floor(7.04 * 12) + 1
    assert len(S.morse_scales(5000)) > len(S.morse_scales(N))
    assert len(S.morse_scales(8)) >= 1


def test_filter_bank_rows_peak_near_two_and_are_zero_phase():
    bank = S.morse_filter_bank(N)
    assert bank.shape == (71, N + 1)  # rfft bins of the 2000-sample padded signal
    assert bank[:, 0].max() == 0.0
    assert np.all(bank.max(axis=1) <= 2.0)
    assert np.all(bank[:20].max(axis=1) > 1.999)
    # Each row peaks at the bin nearest its centre frequency w_psi / s_k (radian grid 2 pi j / M).
    centre_bins = S.morse_wavelet().peak_frequency / S.morse_scales(N) * 2 * N / (2 * np.pi)
    assert np.all(np.abs(np.argmax(bank, axis=1) - centre_bins) <= 1.0)
    assert not bank.flags.writeable


# --- behaviour -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_unit_sinusoid_gives_unit_row_maximum(backend):
    freqs = S.morse_frequencies(N, FS)
    t = np.arange(N) / FS
    # Rows up to 50 (1.3 Hz, 13 cycles in 10 s) are flat at 1 over the central 4 s; slower
    # rows feel the boundary reflection (row 60: 0.92-0.997).
    for k in (0, 10, 25, 40, 50):
        coefs, _ = S.morse_scalogram(np.cos(2 * np.pi * freqs[k] * t + 0.3), backend=backend)
        centre = coefs[:, 300:700]
        assert centre[k].max() == pytest.approx(1.0, abs=1e-3)
        assert centre[k].min() == pytest.approx(1.0, abs=1e-3)
        assert int(np.argmax(centre.max(axis=1))) in (k - 1, k, k + 1)


def test_output_shapes_types_and_batch_dims():
    x = _random_leads((2, 3, N))
    coefs, freqs = S.morse_scalogram(x)
    assert coefs.shape == (2, 3, 71, N) and coefs.dtype == np.float32
    assert freqs.shape == (71,) and np.all(np.diff(freqs) < 0)
    ref, _ = S.morse_scalogram(x[0, 0], backend="numpy")
    assert ref.shape == (71, N) and ref.dtype == np.float64
    assert np.all(coefs >= 0)


def test_torch_tensor_in_torch_tensor_out():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_random_leads((2, N)))
    coefs, _ = S.morse_scalogram(x)
    assert isinstance(coefs, torch.Tensor) and coefs.shape == (2, 71, N)


def test_torch_float32_matches_numpy_float64_reference():
    x = _random_leads((4, 12, N), seed=1)
    fast, _ = S.morse_scalogram(x, backend="torch")
    ref, _ = S.morse_scalogram(x, backend="numpy")
    assert _rel_err(fast, ref) < 1e-5
    for i in range(4):  # per record too
        assert _rel_err(fast[i], ref[i]) < 1e-5


def test_batched_equals_per_lead():
    x = _random_leads((3, 12, N), seed=2)
    batched, _ = S.morse_scalogram(x, chunk=7)  # chunks that straddle records
    for r in range(3):
        for lead in (0, 5, 11):
            single, _ = S.morse_scalogram(x[r, lead])
            assert _rel_err(batched[r, lead], single) < 1e-6


def test_other_lengths_and_sampling_rates():
    x = _random_leads((2, 777), seed=3)
    fast, freqs = S.morse_scalogram(x, fs=500.0)
    ref, _ = S.morse_scalogram(x, fs=500.0, backend="numpy")
    assert fast.shape == (2, len(S.morse_scales(777)), 777)
    assert freqs[0] == pytest.approx(S.morse_frequencies(777, 100.0)[0] * 5)
    assert _rel_err(fast, ref) < 1e-5


def test_ssqueezepy_generalized_morse_oracle():
    os.environ.setdefault("SSQ_PARALLEL", "0")
    ssq = pytest.importorskip("ssqueezepy")
    x = _random_leads((N,), seed=4)
    wavelet = ssq.Wavelet(("gmw", {"gamma": 3, "beta": 20, "norm": "bandpass",
                                   "dtype": "float64"}), dtype="float64")
    p = N // 2
    padded = np.pad(x, p, mode="symmetric")
    wx, _ = ssq.cwt(padded, wavelet, scales=S.morse_scales(N), padtype=None, rpadded=True)
    oracle = np.abs(np.asarray(wx))[:, p : p + N]
    ref, _ = S.morse_scalogram(x, backend="numpy")
    fast, _ = S.morse_scalogram(x, backend="torch")
    assert _rel_err(ref, oracle) < 1e-10
    assert _rel_err(fast, oracle) < 1e-5


@pytest.mark.parametrize("wavelet", ["cmor1.5-1.0", "mexh"])
def test_pywt_wavelets_on_the_morse_grid(wavelet):
    freqs = S.morse_frequencies(N, FS)
    t = np.arange(N) / FS
    k = 25
    x = np.stack([np.cos(2 * np.pi * freqs[k] * t), np.zeros(N)])
    coefs, f = S.cwt_scalogram(x, wavelet, FS)
    np.testing.assert_array_equal(f, freqs)
    assert coefs.shape == (2, 71, N)
    assert np.all(coefs[1] == 0)
    profile = coefs[0, :, 300:700].max(axis=1)
    assert abs(int(np.argmax(profile)) - k) <= 3  # the sinusoid lights its own row


def test_cwt_scalogram_morse_is_morse_scalogram():
    x = _random_leads((2, N), seed=5)
    a, fa = S.cwt_scalogram(x, "morse")
    b, fb = S.morse_scalogram(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": np.zeros((2, 3))}, ValueError, "n_samples >= 4"),
        ({"x": np.full(100, np.nan)}, ValueError, "NaN"),
        ({"x": np.zeros(100, dtype=complex)}, TypeError, "real numbers"),
        ({"x": np.zeros(100), "backend": "jax"}, ValueError, "'torch' or 'numpy'"),
        ({"x": np.zeros(100), "voices_per_octave": 0}, ValueError, "voices_per_octave"),
        ({"x": np.zeros(100), "time_bandwidth": 2.0}, ValueError, "time_bandwidth"),
        ({"x": np.zeros(100), "fs": -1.0}, ValueError, "fs"),
    ],
)
def test_bad_inputs_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        S.morse_scalogram(**kwargs)


def test_unknown_pywt_wavelet_lists_the_choices():
    with pytest.raises(ValueError, match="'morse'"):
        S.cwt_scalogram(np.zeros(100), "morse2")


def test_wavelet_in_time_is_centred_and_normalised():
    t, psi = S.morse_wavelet_time(scale=4.0, n_samples=512)
    assert t[np.argmax(np.abs(psi))] == 0.0
    # Analytic: the spectrum of psi is zero at negative frequencies.
    spectrum = np.fft.fft(np.fft.ifftshift(psi))
    assert np.abs(spectrum[257:]).max() < 1e-12
    assert np.abs(spectrum).max() == pytest.approx(2.0, abs=0.02)


# --- real PTB-XL records -----------------------------------------------------------------------

@pytest.mark.shared_data
def test_real_record_00001(shared_ptbxl):
    wfdb = pytest.importorskip("wfdb")
    from scipy.signal import find_peaks

    signal, fields = wfdb.rdsamp(str(shared_ptbxl / "records100" / "00000" / "00001_lr"))
    assert signal.shape == (1000, 12) and fields["fs"] == 100
    coefs, freqs = S.morse_scalogram(signal.T)
    ref, _ = S.morse_scalogram(signal.T, backend="numpy")
    assert coefs.shape == (12, 71, 1000)
    assert np.isfinite(coefs).all() and coefs.min() >= 0
    assert _rel_err(coefs, ref) < 1e-5
    # QRS complexes are the energy bursts in the 8-25 Hz rows: their peaks in lead II fall on
    # the R peaks that neurokit2 finds in the raw signal (10 beats at about 62 bpm).
    band = (freqs >= 8) & (freqs <= 25)
    energy = coefs[1][band].sum(axis=0)
    peaks, _ = find_peaks(energy, distance=30, height=0.5 * energy.max())
    nk = pytest.importorskip("neurokit2")
    _, info = nk.ecg_peaks(signal[:, 1], sampling_rate=100)
    r_peaks = np.asarray(info["ECG_R_Peaks"])
    assert len(r_peaks) >= 9
    assert all(np.abs(peaks - r).min() <= 3 for r in r_peaks)
    assert len(peaks) - len(r_peaks) in (0, 1)  # the scalogram also sees the beat at 0.2 s
