"""Tests of fusion_utils.data._demo_ecg: a measurable class signal in the synthetic ECGs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_utils.data import _demo_ecg as ecg
from fusion_utils.data._demo_tables import PTBXL_CLASSES


def _ecg_features(x: np.ndarray) -> dict[str, float]:
    """Simple per-record features of a (1000, 12) 100 Hz ECG."""
    from scipy.signal import find_peaks

    precordial = x[:, 6:]
    amplitude = float(np.median(np.percentile(precordial, 99, axis=0)
                                - np.percentile(precordial, 1, axis=0)))
    slope = np.abs(np.diff(x, axis=0)).sum(axis=1)
    peaks, _ = find_peaks(slope, height=0.5 * slope.max(), distance=35)
    busy = slope > 0.25 * np.median(slope[peaks])
    width_ms = 10.0 * busy.sum() / max(len(peaks), 1)  # high-slope time per beat, ms
    return {"amplitude": amplitude, "qrs_width": width_ms}


def test_ecg_class_signal() -> None:
    feats: dict[str, list[dict[str, float]]] = {c: [] for c in PTBXL_CLASSES}
    codes = {"NORM": "NORM", "MI": "IMI", "STTC": "NDT", "CD": "CLBBB", "HYP": "LVH"}
    leads = {}
    for cls in PTBXL_CLASSES:
        for i in range(12):
            x, hi = ecg.synthesize_ecg(cls, codes[cls], hr=70.0, rng=np.random.default_rng([7, i]))
            assert x.shape == (1000, 12) and hi is None
            feats[cls].append(_ecg_features(x))
            leads.setdefault(cls, []).append(x)
    mean = {c: pd.DataFrame(v).mean() for c, v in feats.items()}
    assert mean["HYP"]["amplitude"] > 1.4 * mean["NORM"]["amplitude"]
    assert mean["CD"]["qrs_width"] > 1.2 * mean["NORM"]["qrs_width"]
    # Einthoven / Goldberger: the derived limb leads are exact
    x = leads["MI"][0]
    np.testing.assert_allclose(x[:, 2], x[:, 1] - x[:, 0], atol=1e-9)
    np.testing.assert_allclose(x[:, 3], -(x[:, 0] + x[:, 1]) / 2, atol=1e-9)


def test_ecg_st_and_t_changes() -> None:
    """MI (inferior) lifts the ST segment in II/III/aVF; STTC inverts T in V5 (template level)."""
    rng = np.random.default_rng(3)
    mi = [ecg._record_beat("MI", "IMI", "Stadium I", rng)[0] for _ in range(10)]
    norm = [ecg._record_beat("NORM", "NORM", None, rng)[0] for _ in range(10)]
    sttc = [ecg._record_beat("STTC", "NDT", None, rng)[0] for _ in range(10)]
    st = (ecg._BEAT > 0.08) & (ecg._BEAT < 0.14)  # ST segment on the 500 Hz template axis
    tw = (ecg._BEAT > 0.2) & (ecg._BEAT < 0.35)
    ii = ecg._INDEP.index("II")
    v5 = ecg._INDEP.index("V5")
    assert np.mean([b[st, ii].mean() for b in mi]) > np.mean([b[st, ii].mean() for b in norm]) + 0.1
    assert np.mean([b[tw, v5].mean() for b in sttc]) < 0 < np.mean([b[tw, v5].mean() for b in norm])
