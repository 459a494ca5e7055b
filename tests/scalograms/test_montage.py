"""Montage: parameters and key, lead placement per layout, orientation, intensity, colours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fusion_utils.scalograms import montage as M

N = 1000
T = np.arange(N) / 100.0


def _one_lead_records(n_samples: int = N) -> np.ndarray:
    """Record i has a burst of 10 Hz in lead i only (shape (12, n_samples, 12))."""
    burst = np.sin(2 * np.pi * 10 * T[:n_samples]) * np.exp(-((T[:n_samples] - 5) ** 2))
    out = np.zeros((12, n_samples, 12))
    for lead in range(12):
        out[lead, :, lead] = burst
    return out


# --- parameters --------------------------------------------------------------------------------

def test_default_params_are_the_papers():
    p = M.MontageParams()
    assert (p.wavelet, p.voices_per_octave, p.gamma, p.time_bandwidth, p.fs) == (
        "morse", 10, 3.0, 60.0, 100.0)
    assert (p.layout, p.normalisation, p.colormap, p.image_size, p.n_colors) == (
        "3x4", "per_lead", "jet", 224, 128)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.layout = "6x2"  # type: ignore[misc]


def test_key_is_stable_and_parameter_sensitive():
    a = M.MontageParams()
    assert a.key() == M.MontageParams().key()
    assert len(a.key()) == 16
    assert M.MontageParams(voices_per_octave=10.0, image_size=224.0).key() == a.key()  # type: ignore[arg-type]
    keys = {M.MontageParams(**{name: value}).key() for name, value in [
        ("layout", "6x2"), ("normalisation", "log"), ("colormap", "viridis"), ("image_size", 299),
        ("voices_per_octave", 12), ("gamma", 4.0), ("time_bandwidth", 40.0), ("fs", 500.0),
        ("wavelet", "mexh"), ("n_colors", 256)]}
    assert len(keys) == 10 and a.key() not in keys


def test_params_dict_round_trip_and_unknown_field():
    p = M.MontageParams(layout="4x3", normalisation="per_record", image_size=299)
    assert M.MontageParams.from_dict(p.to_dict()) == p
    with pytest.raises(TypeError, match="colourmap"):
        M.MontageParams.from_dict({**p.to_dict(), "colourmap": "jet"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "2x6"}, "3x4, 4x3, 6x2"),
        ({"normalisation": "zscore"}, "per_lead, per_record, log"),
        ({"colormap": "rainbowz"}, "matplotlib"),
        ({"image_size": 10}, "image_size"),
        ({"n_colors": 1000}, "n_colors"),
        ({"wavelet": "morlet2"}, "'morse'"),
        ({"voices_per_octave": 0}, "voices_per_octave"),
    ],
)
def test_bad_params_say_what_to_pass(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.MontageParams(**kwargs)


# --- geometry ----------------------------------------------------------------------------------

def test_documented_layouts():
    assert M.LAYOUTS["3x4"][0] == ("I", "II", "III", "aVR")
    assert M.lead_grid("3x4") == ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11))
    assert M.lead_grid("4x3") == ((0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11))
    assert M.lead_grid("6x2") == ((0, 6), (1, 7), (2, 8), (3, 9), (4, 10), (5, 11))
    assert M.lead_grid("3x4-clinical") == ((0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11))


@pytest.mark.parametrize("layout", list(M.LAYOUTS))
@pytest.mark.parametrize("size", [224, 227, 299])
def test_tiles_partition_the_image(layout, size):
    cover = np.zeros((size, size), dtype=int)
    boxes = M.tile_boxes(layout, size)
    assert [b[0] for b in boxes] == list(range(12))
    for _, top, bottom, left, right in boxes:
        cover[top:bottom, left:right] += 1
    assert np.all(cover == 1)
    rows, cols = len(M.LAYOUTS[layout]), len(M.LAYOUTS[layout][0])
    heights = {b[2] - b[1] for b in boxes}
    assert max(heights) - min(heights) <= 1 and round(size / rows) in heights | {size // rows}
    assert {b[4] - b[3] for b in boxes} <= {size // cols, size // cols + 1}


def _colour_index(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Invert the colour lookup (every pixel must be a LUT colour)."""
    def pack(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.int64)
        return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]

    keys = pack(lut)
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], pack(rgb))
    assert np.all(keys[order][pos] == pack(rgb)), "a pixel is not a colormap colour"
    return order[pos]


@pytest.fixture(scope="module")
def one_lead_scalograms():
    from fusion_utils.scalograms.morse import morse_scalogram

    mag, _ = morse_scalogram(np.swapaxes(_one_lead_records(), 1, 2))
    return mag  # (12 records, 12 leads, 71, 1000)


@pytest.mark.parametrize("layout", list(M.LAYOUTS))
def test_each_lead_lights_its_documented_tile(layout, one_lead_scalograms):
    params = M.MontageParams(layout=layout, image_size=120)
    rgb = M.scalograms_to_montage(one_lead_scalograms, params)
    assert rgb.shape == (12, 120, 120, 3) and rgb.dtype == np.uint8
    level = _colour_index(rgb, M.colormap_lut())
    grid = M.lead_grid(layout)
    for lead in range(12):
        _, top, bottom, left, right = M.tile_boxes(layout, 120)[lead]
        lit = level[lead].copy()
        assert lit[top:bottom, left:right].max() >= params.n_colors * 0.5
        lit[top:bottom, left:right] = 0
        assert lit.max() == 0, f"record with only lead {M.LEADS[lead]} lit other tiles"
        # and the tile is where the documented grid says
        row = next(i for i, r in enumerate(grid) if lead in r)
        col = grid[row].index(lead)
        assert (top, left) == (round(row * 120 / len(grid)), round(col * 120 / len(grid[0])))
    # the signal path (lead-major CWT order) agrees with the scalogram path
    np.testing.assert_array_equal(
        M.records_to_montage_indices(_one_lead_records()[:2], params), level[:2])


def test_high_frequencies_on_top_and_time_left_to_right():
    params = M.MontageParams(image_size=224)
    sig = np.zeros((N, 12))
    sig[:, 0] = np.sin(2 * np.pi * 30 * T) * (T < 5)  # lead I: fast, first half
    sig[:, 1] = np.sin(2 * np.pi * 1 * T) * (T >= 5)  # lead II: slow, second half
    idx = M.records_to_montage_indices(sig[None], params)[0].astype(float)
    for lead, (vert, horiz) in {0: ("top", "left"), 1: ("bottom", "right")}.items():
        _, top, bottom, left, right = M.tile_boxes("3x4", 224)[lead]
        tile = idx[top:bottom, left:right]
        h, w = tile.shape
        upper, lower = tile[: h // 3].mean(), tile[-h // 3 :].mean()
        first, second = tile[:, : w // 2].mean(), tile[:, w // 2 :].mean()
        assert (upper > lower) == (vert == "top")
        assert (first > second) == (horiz == "left")


def test_normalisations():
    sig = np.zeros((N, 12))
    burst = np.sin(2 * np.pi * 10 * T) * np.exp(-((T - 5) ** 2))
    sig[:, 0], sig[:, 1] = burst, 2 * burst
    boxes = M.tile_boxes("3x4", 224)

    def tile_max(norm: str, lead: int) -> int:
        idx = M.records_to_montage_indices(sig[None], M.MontageParams(normalisation=norm))[0]
        _, top, bottom, left, right = boxes[lead]
        return int(idx[top:bottom, left:right].max())

    assert tile_max("per_lead", 0) == tile_max("per_lead", 1) >= 120
    assert tile_max("per_record", 1) >= 120
    assert tile_max("per_record", 0) == pytest.approx(tile_max("per_record", 1) / 2, abs=2)
    assert tile_max("log", 1) >= 120
    # log10(2) / 3 decades of the 127 colours separate the two leads' peaks
    assert tile_max("log", 1) - tile_max("log", 0) == pytest.approx(127 * np.log10(2) / 3, abs=2)
    assert tile_max("per_lead", 5) == tile_max("log", 5) == 0  # silent leads stay at the bottom


def test_normalise_scalograms_full_resolution():
    rng = np.random.default_rng(0)
    mag = rng.random((2, 12, 5, 7)) * np.arange(1, 13)[None, :, None, None]
    per_lead = M.normalise_scalograms(mag, "per_lead").numpy()
    assert (np.allclose(per_lead.min(axis=(-2, -1)), 0)
            and np.allclose(per_lead.max(axis=(-2, -1)), 1))
    per_record = M.normalise_scalograms(mag, "per_record").numpy()
    assert np.allclose(per_record.max(axis=(-3, -2, -1)), 1)
    assert per_record[:, 0].max() < 0.2  # lead 0 is 12x weaker than lead 11
    flat = M.normalise_scalograms(np.ones((12, 3, 3)), "per_lead").numpy()
    assert np.all(flat == 0)


# --- colour ------------------------------------------------------------------------------------

def test_jet_is_matlabs():
    jet64 = M._matlab_jet(64)
    np.testing.assert_allclose(jet64[0], [0, 0, 0.5625])
    np.testing.assert_allclose(jet64[7], [0, 0, 1])
    np.testing.assert_allclose(jet64[23], [0, 1, 1])
    np.testing.assert_allclose(jet64[39], [1, 1, 0])
    np.testing.assert_allclose(jet64[55], [1, 0, 0])
    np.testing.assert_allclose(jet64[-1], [0.5, 0, 0])
    lut = M.colormap_lut("jet", 128)
    assert lut.shape == (128, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (0, 0, round(255 * 17 / 32)) and tuple(lut[-1]) == (128, 0, 0)
    assert M.colormap_lut("gray", 256)[255].tolist() == [255, 255, 255]


def test_rgb_montage_is_the_lut_of_the_indices():
    records = _one_lead_records()[:3]
    params = M.MontageParams(colormap="viridis", n_colors=64, image_size=96)
    idx = M.records_to_montage_indices(records, params)
    rgb = M.records_to_montages(records, params)
    assert rgb.shape == (3, 96, 96, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, M.colormap_lut("viridis", 64)[idx])
    np.testing.assert_array_equal(M.record_to_montage(records[1], params), rgb[1])


def test_scalograms_to_montage_matches_the_signal_path():
    from fusion_utils.scalograms.morse import morse_scalogram

    record = _one_lead_records()[4] + 0.01 * np.random.default_rng(1).standard_normal((N, 12))
    mag, _ = morse_scalogram(record.T)
    for params in (M.MontageParams(), M.MontageParams(layout="6x2", normalisation="log")):
        np.testing.assert_array_equal(M.scalograms_to_montage(mag, params),
                                      M.record_to_montage(record, params))


def test_pywavelets_montage():
    record = _one_lead_records()[2]
    params = M.MontageParams(wavelet="mexh", image_size=64)
    img = M.record_to_montage(record, params)
    assert img.shape == (64, 64, 3)
    assert not np.array_equal(img, M.record_to_montage(record, M.MontageParams(image_size=64)))


@pytest.mark.parametrize(
    ("signal", "error", "match"),
    [
        (np.zeros((12, N)), ValueError, "pass signal.T"),
        (np.zeros((N, 8)), ValueError, "n_samples, 12"),
        (np.full((N, 12), np.nan), ValueError, "NaN"),
    ],
)
def test_bad_signals(signal, error, match):
    with pytest.raises(error, match=match):
        M.record_to_montage(signal)


def test_records_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        M.records_to_montages([np.zeros((N, 12)), np.zeros((500, 12))])
    assert M.records_to_montages([]).shape == (0, 224, 224, 3)


# --- real record -------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_real_record_00001_montage(shared_ptbxl):
    wfdb = pytest.importorskip("wfdb")
    from fusion_utils.scalograms.morse import morse_scalogram

    signal, _ = wfdb.rdsamp(str(shared_ptbxl / "records100" / "00000" / "00001_lr"))
    params = M.MontageParams()
    idx = M.records_to_montage_indices(signal[None], params)[0]
    assert idx.shape == (224, 224)
    for _, top, bottom, left, right in M.tile_boxes("3x4", 224):
        tile = idx[top:bottom, left:right]
        # Per-lead min-max spans the colormap; the antialiased shrink (1000 samples -> 56 px)
        # averages the narrow QRS bursts, so tile maxima sit at 68-122 of 127 for this record.
        assert tile.min() <= 1 and tile.max() >= 60
    # The float64 reference scalograms give the same picture (at most one colour step apart).
    ref, _ = morse_scalogram(signal.T, backend="numpy")
    ref_img = M.scalograms_to_montage(ref, params)
    lut = M.colormap_lut()
    assert np.abs(lut[idx].astype(int) - ref_img.astype(int)).max() <= 16
    assert np.mean(np.all(lut[idx] == ref_img, axis=-1)) > 0.99


def test_mean_scalograms_streams_an_average():
    records = _one_lead_records()[:5]
    mean, n = M.mean_scalograms(iter(records), batch_size=2)  # a generator, uneven batches
    assert n == 5 and mean.shape == (12, 71, N)
    from fusion_utils.scalograms.morse import morse_scalogram

    mag, _ = morse_scalogram(np.swapaxes(records, 1, 2))
    expected = M.normalise_scalograms(mag, "per_lead").numpy().mean(axis=0)
    np.testing.assert_allclose(mean, expected, atol=1e-6)
    assert mean.min() >= 0 and mean.max() <= 1
    with pytest.raises(ValueError, match="empty"):
        M.mean_scalograms([])
    with pytest.raises(ValueError, match="one length"):
        M.mean_scalograms([records[0], records[1][:500]])
