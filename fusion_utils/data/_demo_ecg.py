"""The demo cohort's ECGs: twelve-lead signals synthesised per class, written as WFDB records.

neurokit2's ECGSYN model is run once per class (:func:`_templates`) and one beat per lead kept as
the class template; each record (:func:`synthesize_ecg`) then varies its template cheaply and
deterministically: class-specific changes (MI territory from the SCP code, STTC ST-T changes,
CD conduction patterns, HYP voltage), heart rate and sinus arrhythmia, per-lead amplitude, the
limb leads III, aVR, aVL and aVF derived from I and II, baseline wander and noise consistent
with the table's noise columns. Beats are synthesised at 500 Hz and decimated to 100 Hz like
PTB-XL's ``records100``. The design is described in the book's Methods chapter (section
"The demo cohort").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusion_utils.data._demo_tables import (
    _MI_STADIUM,
    _PTBXL_PRIORS,
    _S_ECG,
    _S_LOOK,
    PTBXL_CLASSES,
    _choice,
    _draw_ptbxl,
    _look,
    _rng,
    _smoothstep,
)
from fusion_utils.data.ptbxl import LEADS as PTBXL_LEADS

__all__ = ["LEADS", "synthesize_ecg"]


LEADS: tuple[str, ...] = PTBXL_LEADS  # the header names PTB-XL writes, one definition

_FS_HI = 500
_BEAT = np.arange(-250, 250) / _FS_HI  # template time axis (s), R peak at 0
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # leads synthesised; the rest derived
_TARGET_QRS_PP = np.array([0.9, 1.3, 1.3, 2.0, 2.1, 2.0, 1.7, 1.3])  # mV, QRS peak to peak
_TARGET_P = np.array([0.08, 0.12, 0.07, 0.08, 0.08, 0.08, 0.08, 0.08])   # mV, largest |P|
_TARGET_T = np.array([0.22, 0.32, 0.15, 0.5, 0.5, 0.42, 0.32, 0.24])     # mV, largest |T|
_NK_CLASS_WAVES: dict[str, dict[str, tuple[float, ...]]] = {
    # neurokit2 ECGSYN wave parameters (P, Q, R, S, T): angles ti (deg), amplitudes ai, widths bi
    "NORM": {},
    "MI": {"ai": (1.2, -14.0, 26.0, -7.5, 0.75), "bi": (0.25, 0.14, 0.1, 0.1, 0.4)},
    "STTC": {"ai": (1.2, -5.0, 30.0, -7.5, -0.5)},
    "CD": {"ti": (-70.0, -25.0, 0.0, 30.0, 110.0), "bi": (0.25, 0.2, 0.2, 0.2, 0.4),
           "ai": (1.2, -5.0, 24.0, -9.0, 0.75)},
    "HYP": {"ai": (1.2, -5.0, 30.0, -12.0, 0.75)},
}


@functools.lru_cache(maxsize=1)
def _templates() -> dict[str, np.ndarray]:
    """One beat per class and independent lead from neurokit2, in mV (shape (500, 8), 500 Hz)."""
    import neurokit2 as nk

    templates: dict[str, np.ndarray] = {}
    for cls in PTBXL_CLASSES:
        ecg = nk.ecg_simulate(duration=3, sampling_rate=_FS_HI, heart_rate=60, heart_rate_std=0,
                              noise=0, method="multileads", random_state=0,
                              **_NK_CLASS_WAVES[cls])
        # ECGSYN's lead II has a tiny QRS under a huge T wave; lead I's shape stands in for it
        # (II then differs from I by amplitude, per-record jitter and the class changes).
        x = ecg[["I", "I", "V1", "V2", "V3", "V4", "V5", "V6"]].to_numpy(float)
        beat = x[_FS_HI - 250:_FS_HI + 250].copy()  # ECGSYN starts at an R peak: beat 2 of 3
        start, end = beat[:15].mean(0), beat[-15:].mean(0)
        ramp = np.linspace(0.0, 1.0, len(beat))[:, None]
        beat -= start + (end - start) * ramp  # linear detrend: isoelectric at both ends
        # ECGSYN's per-lead P and T amplitudes are far from real ones (P and T taller than the
        # QRS in V1 and V6): keep each wave's shape and set its size to a typical adult value.
        half = 0.10 if cls == "CD" else 0.06
        t = _BEAT[:, None]
        p_w = _smoothstep((-half - t) / 0.03)
        t_w = _smoothstep((t - half) / 0.03)
        parts = (beat * p_w, beat * (1.0 - p_w - t_w), beat * t_w)
        targets = (_TARGET_P, _TARGET_QRS_PP, _TARGET_T)
        beat = np.zeros_like(beat)
        for k, (part, target) in enumerate(zip(parts, targets, strict=True)):
            size = part.max(0) - part.min(0) if k == 1 else np.abs(part).max(0)
            beat += part * (target / np.maximum(size, 1e-9))
        templates[cls] = beat
    return templates


def _gauss(t: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mu) / sd) ** 2)


_MI_TERRITORY = {  # (delta on I, delta on II) for limb leads, precordial weights V1..V6
    "inferior": ((-0.3, 1.0), (0, 0, 0, 0, 0, 0)),
    "anterior": ((0.1, -0.3), (0.6, 1.0, 1.0, 0.7, 0.2, 0)),
    "lateral": ((1.0, 0.3), (0, 0, 0, 0.3, 0.9, 1.0)),
}
_MI_CODE_TERRITORY = {"IMI": ["inferior"], "ILMI": ["inferior", "lateral"],
                      "IPLMI": ["inferior", "lateral"], "ASMI": ["anterior"], "AMI": ["anterior"],
                      "INJAS": ["anterior"], "ALMI": ["anterior", "lateral"], "LMI": ["lateral"]}


def _territory_vector(territories: Sequence[str]) -> np.ndarray:
    v = np.zeros(8)
    for t in territories:
        (d1, d2), pre = _MI_TERRITORY[t]
        v += np.array([d1, d2, *pre])
    return np.clip(v, -1.0, 1.0)


def _record_beat(label: str, code: str, stadium: str | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, float, float, float]:
    """Per-record beat (500, 8) and its timing factors (QRS stretch, PR factor, QT factor)."""
    beat = _templates()[label].copy()
    t = _BEAT[:, None]
    qrs_w = _smoothstep((0.075 - np.abs(t)) / 0.03)         # QRS window
    st_w = _smoothstep((t - 0.05) / 0.03) * _smoothstep((0.36 - t) / 0.08)  # ST segment to T end
    t_w = _smoothstep((t - 0.10) / 0.05) * _smoothstep((0.48 - t) / 0.05)   # T wave
    lead_amp = rng.lognormal(0.0, 0.15, size=8)
    qrs_gain = np.ones(8)
    t_gain = rng.uniform(0.8, 1.2, size=8)
    st = np.zeros(8)
    add = np.zeros_like(beat)
    stretch = rng.uniform(0.92, 1.08)
    pr_factor = rng.uniform(0.95, 1.05)
    qt_factor = rng.uniform(0.97, 1.03)

    if label == "MI":
        terr = _territory_vector(_MI_CODE_TERRITORY.get(code, ["inferior"]))
        acute = stadium in ("Stadium I", "Stadium I-II", "Stadium II")
        elev = rng.uniform(0.15, 0.35) if acute else rng.uniform(0.06, 0.18)
        st += elev * terr
        involved = np.clip(terr, 0, 1)
        qrs_gain *= 1.0 - 0.45 * involved                       # lost R
        add -= (involved * rng.uniform(0.25, 0.5)) * _gauss(t, -0.028, 0.011)  # pathological Q
        if not acute:
            t_gain *= 1.0 - 1.6 * involved * rng.uniform(0.5, 1.0)  # T inversion in old MI
    elif label == "STTC":
        inferior = code in ("ISCIN", "ISCIL")
        depth = rng.uniform(0.06, 0.16)
        vec = (np.array([0.3, 1.0, 0, 0, 0, 0.2, 0.6, 0.8]) if inferior
               else np.array([1.0, 0.4, 0, 0, 0.3, 0.8, 1.0, 1.0]))
        st -= depth * vec
        t_gain *= rng.uniform(0.4, 1.2)
        if code == "LNGQT":
            qt_factor *= rng.uniform(1.15, 1.3)
    elif label == "CD":
        wide = code in ("CLBBB", "CRBBB", "IVCD", "WPW")
        stretch = rng.uniform(1.0, 1.25) if wide else rng.uniform(0.82, 0.95)
        if code in ("CRBBB", "IRBBB"):
            amp = rng.uniform(0.4, 0.8) * (1.0 if code == "CRBBB" else 0.5)
            add[:, 2:4] += amp * _gauss(t, 0.045, 0.014)            # R' in V1-V2
            add[:, [0, 7]] -= 0.5 * amp * _gauss(t, 0.05, 0.018)    # broad S in I, V6
        elif code == "CLBBB":
            add[:, [0, 6, 7]] += rng.uniform(0.3, 0.6) * _gauss(t, 0.035, 0.02)  # notched broad R
            add[:, 2:4] -= rng.uniform(0.4, 0.8) * _gauss(t, 0.03, 0.025)      # deep wide S V1-V2
            t_gain[[0, 6, 7]] *= -0.6                                         # discordant T
        elif code == "LAFB":
            qrs_gain[1] *= rng.uniform(-0.6, -0.2)                   # left axis: II negative
            qrs_gain[0] *= rng.uniform(1.2, 1.5)
        elif code == "1AVB":
            pr_factor *= rng.uniform(1.6, 2.1)
        elif code == "WPW":
            add[:, :] += 0.25 * np.sign(beat[250]) * _gauss(t, -0.045, 0.02)  # delta wave
            pr_factor *= 0.7
    elif label == "HYP":
        qrs_gain *= np.array([1.3, 1.3, 2.0, 2.2, 1.8, 1.9, 2.2, 2.0]) * rng.uniform(0.85, 1.2)
        if code == "RVH":
            add[:, 2] += 0.8 * _gauss(_BEAT, 0.0, 0.015)
        if code in ("LAO/LAE", "RAO/RAE"):
            add[:, 1] += 0.1 * _gauss(_BEAT, -0.17, 0.03)                 # broad / tall P in II
            add[:, 2] -= 0.08 * _gauss(_BEAT, -0.14, 0.025)               # terminal negative P V1
        if rng.random() < 0.4:                                        # strain pattern
            strain = np.array([1.0, 0.3, 0, 0, 0, 0.5, 1.0, 1.0])
            st -= 0.08 * strain
            t_gain *= 1.0 - 1.5 * strain
    beat = beat + (qrs_gain - 1.0) * beat * qrs_w + (t_gain - 1.0) * beat * t_w
    beat = (beat + add + st * st_w) * lead_amp
    return beat, float(stretch), float(pr_factor), float(qt_factor)


def _place_beats(beat: np.ndarray, r_times: np.ndarray, rr: np.ndarray, stretch: float,
                 pr_factor: float, qt_factor: float, n: int, fs: int) -> np.ndarray:
    """Sum time-warped copies of ``beat`` (template at 500 Hz) with R peaks at ``r_times``."""
    out = np.zeros((n, beat.shape[1]))
    q = 0.05  # half QRS on the template axis
    for r, interval in zip(r_times, rr, strict=True):
        k = np.sqrt(interval) * qt_factor                 # ST-T scale (Bazett-like)
        kp = np.sqrt(np.sqrt(interval)) * pr_factor       # P-R scale
        lo = r - (q * stretch + (0.5 - q) * kp)
        hi = r + (q * stretch + (0.5 - q) * k)
        i0, i1 = max(0, int(np.floor(lo * fs))), min(n, int(np.ceil(hi * fs)) + 1)
        if i1 <= i0:
            continue
        dt = np.arange(i0, i1) / fs - r
        tau = np.where(np.abs(dt) <= q * stretch, dt / stretch,
                       np.where(dt > 0, q + (dt - q * stretch) / k, -q + (dt + q * stretch) / kp))
        for j in range(beat.shape[1]):
            out[i0:i1, j] += np.interp(tau, _BEAT, beat[:, j], left=0.0, right=0.0)
    return out


def synthesize_ecg(label: str, code: str, *, hr: float = 70.0, stadium: str | None = None,
                   drift: bool = False, static: bool = False, burst: str | None = None,
                   rng: np.random.Generator | None = None,
                   records500: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Synthesize one 10-s 12-lead ECG in mV: ``(x100 (1000, 12), x500 (5000, 12) or None)``.

    Parameters
    ----------
    label : str
        Superclass (``NORM``, ``MI``, ``STTC``, ``CD``, ``HYP``).
    code : str
        Its SCP code (chooses the territory of an MI, the kind of conduction disturbance, ...).
    hr : float
        Mean heart rate (beats per minute).
    stadium : str, optional
        ``infarction_stadium1`` (acute stages get more ST elevation).
    drift, static : bool
        Stronger baseline wander / white noise (the table's ``baseline_drift`` / ``static_noise``).
    burst : str, optional
        ``burst_noise`` value: ``"alles"`` (all leads), ``"I-AVF"`` (limb leads) or ``"V1"``.
    rng : numpy.random.Generator, optional
        Source of randomness (default: a fresh unseeded generator).
    records500 : bool
        Also return the 500 Hz version (its own white noise; the 100 Hz signal does not change).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)
        Leads in PTB-XL's header order (I, II, III, AVR, AVL, AVF, V1..V6).
    """
    from scipy.signal import resample_poly

    if label not in PTBXL_CLASSES:
        raise ValueError(f"unknown PTB-XL superclass {label!r}: expected one of {PTBXL_CLASSES}")
    rng = rng if rng is not None else np.random.default_rng()
    beat, stretch, pr_factor, qt_factor = _record_beat(label, code, stadium, rng)
    n_hi = 10 * _FS_HI
    rr_mean = 60.0 / hr
    r_times = [-rng.uniform(0.0, rr_mean)]
    rr: list[float] = []
    phase = rng.uniform(0, 2 * np.pi)
    while r_times[-1] < 10.6:
        interval = rr_mean * (1 + 0.04 * np.sin(2 * np.pi * 0.25 * r_times[-1] + phase)
                              + rng.normal(0, 0.015))
        rr.append(interval)
        r_times.append(r_times[-1] + interval)
    rr.append(rr[-1])
    indep = _place_beats(beat, np.array(r_times), np.array(rr), stretch, pr_factor, qt_factor,
                         n_hi, _FS_HI)
    t = np.arange(n_hi) / _FS_HI
    wander_amp = rng.uniform(0.02, 0.08) * (3.0 if drift else 1.0)
    for j in range(indep.shape[1]):
        for _ in range(2):
            f = rng.uniform(0.05, 0.4)
            indep[:, j] += wander_amp * rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t
                                                                        + rng.uniform(0, 2 * np.pi))
    if burst is not None:
        cols = {"alles": list(range(8)), "I-AVF": [0, 1]}.get(burst, [2])
        start = rng.uniform(0, 9.0)
        seg = slice(int(start * _FS_HI), int((start + rng.uniform(0.4, 1.2)) * _FS_HI))
        indep[seg, cols] += rng.normal(0, rng.uniform(0.1, 0.3),
                                       size=(seg.stop - seg.start, len(cols)))
    # white noise on the electrode leads; the limb leads are derived afterwards, so Einthoven's
    # and Goldberger's identities hold exactly, as on a digital electrocardiograph
    sigma = rng.uniform(0.005, 0.02) * (3.0 if static else 1.0)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    lo = resample_poly(indep, 1, 5, axis=0)
    lo = lo + sigma * rng.standard_normal(lo.shape)
    hi = indep + sigma * noise_rng.standard_normal(indep.shape) if records500 else None
    return _twelve_leads(lo), (None if hi is None else _twelve_leads(hi))


def _twelve_leads(indep: np.ndarray) -> np.ndarray:
    """(n, 8) leads I, II, V1..V6 -> (n, 12) in PTB-XL's order (III, aVR, aVL, aVF derived)."""
    lead_i, lead_ii = indep[:, 0], indep[:, 1]
    return np.column_stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2,
                            lead_i - lead_ii / 2, lead_ii - lead_i / 2, indep[:, 2:]])


def _write_record(base: Path, signal: np.ndarray, fs: int) -> None:
    import wfdb

    base.parent.mkdir(parents=True, exist_ok=True)
    signal = np.clip(np.round(signal, 3), -32.0, 32.0)
    wfdb.wrsamp(base.name, fs=fs, units=["mV"] * 12, sig_name=list(LEADS), p_signal=signal,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                write_dir=str(base.parent))


def _write_ptbxl_records(folder: Path, n: int, seed: int, records500: bool,
                         part: tuple[int, int] = (0, 1)) -> int:
    """Write the WFDB records of every ``part[1]``-th record from ``part[0]``; return the count."""
    table, params = _draw_ptbxl(n, seed)
    done = 0
    for ecg_id, p in params.iloc[part[0]::part[1]].iterrows():
        look, code, stadium = p["label"], p["code"], p["stadium"]
        shown = _look("ptbxl", look, seed, int(ecg_id))
        if shown != look:  # an ambiguous record: another class's morphology, its own metadata
            pr = _PTBXL_PRIORS[shown]
            look_rng = _rng(seed, _S_LOOK + 100, int(ecg_id))
            code = _choice(look_rng, tuple(pr["codes"]), tuple(pr["codes"].values()))
            stadium = (_choice(look_rng, tuple(_MI_STADIUM), tuple(_MI_STADIUM.values()))
                       if shown == "MI" else None)
            look = shown
        x100, x500 = synthesize_ecg(look, code, hr=p["hr"], stadium=stadium,
                                    drift=p["drift"], static=p["static"], burst=p["burst"],
                                    rng=_rng(seed, _S_ECG, int(ecg_id)), records500=records500)
        _write_record(folder / table.at[ecg_id, "filename_lr"], x100, 100)
        if x500 is not None:
            _write_record(folder / table.at[ecg_id, "filename_hr"], x500, 500)
        done += 1
    return done
