"""The fast Morse transform: float32, batched, on torch (``morse_scalogram(backend="torch")``).

It computes the same ``|W|`` as the float64 reference in :mod:`fusion_utils.scalograms.morse`
(to about 1e-6 of each row's maximum) several times faster. A plan (:func:`_torch_plan`, cached
per signal length and Morse parameters) computes the wide, high-frequency rows with
``torch.fft`` in a few *tiers* of FFT lengths (the rows whose wavelet is short on FFTs shorter
than the padded length ``M``, over a window of the padded signal just wide enough) and the
narrow, low-frequency rows as matrix products with a shared band-limited basis. Chunks of
signals run on threads of :func:`~fusion_utils.scalograms.morse.torch_worker_pool` and reuse
FFT buffers between calls (:class:`_Workspaces`). The constants below were measured on this
project's 2-core machine; each says what it trades.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion_utils.scalograms.morse import (
    _bank_numpy,
    _pad_index,
    _pad_width,
    morse_scales,
    morse_wavelet,
    torch_worker_pool,
)

__all__: list[str] = []  # private module: morse_scalogram(backend="torch") is the public entry

#: Filter values below this are set to zero in the float32 bank: they change nothing at float32
#: precision (the peak is 2) but their products underflow to denormals, which make FFTs ~2.5x
#: slower.
DENORMAL_FLOOR = 1e-20

#: A filter bin below this fraction of the peak (2) is left out of a band-limited row
#: (:func:`_torch_plan`): its share of ``|W|`` is far below float32 resolution.
BAND_FLOOR = 1e-9

#: How many times faster a matrix product runs than an FFT per flop on a CPU (measured ~5-10
#: with MKL): rows narrow enough that ``8 w n`` flops beat ``GEMM_ADVANTAGE`` times an FFT's
#: ``5 M log2 M`` are computed as products with a shared band basis.
GEMM_ADVANTAGE = 5.0

#: A width group of band-limited rows ends when a row is narrower than this fraction of the
#: group's widest row (rows are zero-padded to the group's width; at most 25 % wasted work).
GROUP_WIDTH_RATIO = 0.75

#: A wavelet whose L1 mass beyond +-h samples is below this fraction of the whole is computed
#: with an FFT of length n + 2h or more instead of M (:func:`_torch_plan`): what that leaves
#: out is far below float32 resolution.
TAIL_FLOOR = 1e-9

#: Fixed cost of one more FFT length (its rfft and per-operation overheads) in the units of
#: the tier cost ``rows x L log2 L``; about 4,000 FFT points' worth, measured.
TIER_OVERHEAD = 40_000.0


@functools.lru_cache(maxsize=16)
def _pad_index_torch(n: int) -> Any:
    import torch

    return torch.from_numpy(_pad_index(n).copy())


@dataclass(frozen=True)
class _FftTier:
    """Rows ``rows[0]:rows[1]`` computed by inverse FFTs of one length (see :func:`_torch_plan`)."""

    rows: tuple[int, int]
    length: int  # L: FFT length (the padded length M for the exact tier)
    offset: int  # a = (L - n) // 2: the first kept sample of the tier's transform
    segment: Any  # (L,) int64: the signal samples that make up the window (reflection padded)
    bank: Any  # (n_rows, L // 2 + 1) float32: the filters on the tier's bins


@dataclass(frozen=True)
class _BandGroup:
    """Rows ``rows[0]:rows[1]`` computed by one matrix product (see :func:`_torch_plan`)."""

    rows: tuple[int, int]
    gather: Any  # (n_rows * width,) int64: rfft bin of each band entry
    filt: Any  # (n_rows, width) float32: filter values on the band, 0 past a row's own width
    basis: Any  # (width, n) complex64: exp(2 pi i j (t + pad) / M) / M


@dataclass(frozen=True)
class _TorchPlan:
    """How the fast path computes each row for one signal length and parameter set."""

    n: int
    m: int
    pad: int
    n_scales: int
    tiers: tuple[_FftTier, ...]
    groups: tuple[_BandGroup, ...]

    @property
    def n_fft_rows(self) -> int:
        """Rows ``0 .. n_fft_rows - 1`` use inverse FFTs; the rest, matrix products."""
        return self.tiers[-1].rows[1] if self.tiers else 0


def _band(row: np.ndarray) -> tuple[int, int]:
    """First bin and width of the bins where a filter is at least ``BAND_FLOOR`` of its peak."""
    nz = np.flatnonzero(row >= BAND_FLOOR * 2.0)
    if nz.size == 0:
        return int(np.argmax(row)), 1
    return int(nz[0]), int(nz[-1] - nz[0] + 1)


def _half_support(bank: np.ndarray, m: int) -> np.ndarray:
    """Per row, the half-width ``h`` (samples) outside which the wavelet holds < ``TAIL_FLOOR``.

    Measured on the wavelet the exact transform uses (the inverse FFT of the row on ``M``
    bins), as the L1 mass of ``|psi|`` beyond ``+-h`` relative to the whole. Rows whose filter
    is cut at the Nyquist frequency decay slowly and get ``h`` near ``M / 2`` (no shorter FFT).
    """
    full = np.zeros((bank.shape[0], m), dtype=np.complex128)
    full[:, : bank.shape[1]] = bank
    mag = np.abs(np.fft.ifft(full, axis=-1))
    lags = np.minimum(np.arange(m), m - np.arange(m))  # circular distance from t = 0
    order = np.argsort(lags, kind="stable")
    inside = np.cumsum(mag[:, order], axis=1)
    total = inside[:, -1:]
    ok = (total - inside) < TAIL_FLOOR * total
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), m - 1)
    return lags[order][first]


def _fast_fft_length(at_least: int) -> int:
    """The smallest ``2^a 3^b 5^c`` with ``c <= 1`` that is ``>= at_least``.

    Lengths with a higher power of 5 (1250, 1350, 1500, 2000) measured 15-50 % slower per point
    with torch's MKL FFT than their neighbours (1152, 1280, 1440, 1536).
    """
    m = max(int(at_least), 1)
    while True:
        r = m
        for f in (2, 3):
            while r % f == 0:
                r //= f
        if r in (1, 5):
            return m
        m += 1


def _fft_length_for(need: int, m: int) -> int:
    """The tier length for a run whose rows need ``need`` samples: fast, or ``M`` (exact)."""
    length = _fast_fft_length(need)
    return m if length >= m else length


def _fft_tiers(need: list[int], m: int) -> list[tuple[int, int, int]]:
    """Cut rows ``0 .. len(need)-1`` into runs that share an FFT length: ``(r0, r1, L)``.

    Row ``r`` needs a length of at least ``need[r]``; a run takes the fast length of its
    largest need (``M`` once that reaches ``M``: the exact transform). Dynamic programming over
    the cut points minimises ``rows L log2 L`` per run plus ``TIER_OVERHEAD`` (the run's own
    rfft and per-operation costs, in the same units).
    """
    k = len(need)
    best = [0.0] + [math.inf] * k
    cut = [0] * (k + 1)
    for r1 in range(1, k + 1):
        for r0 in range(r1):
            length = _fft_length_for(max(need[r0:r1]), m)
            cost = best[r0] + (r1 - r0) * length * math.log2(length) + TIER_OVERHEAD
            if cost < best[r1]:
                best[r1], cut[r1] = cost, r0
    runs = []
    r1 = k
    while r1 > 0:
        r0 = cut[r1]
        runs.append((r0, r1, _fft_length_for(max(need[r0:r1]), m)))
        r1 = r0
    return runs[::-1]


@functools.lru_cache(maxsize=16)
def _torch_plan(n: int, gamma: float, tb: float, nv: int) -> _TorchPlan:
    """Split the filter bank into inverse-FFT rows and band-limited matrix-product rows.

    A row whose filter is non-negligible on only ``w`` bins ``k0 .. k0 + w - 1`` satisfies,
    for the kept samples ``t = 0 .. n-1`` of the padded signal's transform,

    ``|W(t)| = |sum_j X[k0 + j] Psi[k0 + j] exp(2 pi i j (t + pad) / M)| / M``

    (the factor ``exp(2 pi i k0 (t + pad) / M)`` has modulus 1 and drops out of ``|W|``): a
    product of the band (``w`` numbers) with a ``(w, n)`` matrix that is the *same* for every
    row of equal width. That costs ``8 w n`` flops against ``~5 M log2 M`` for an inverse FFT
    of length ``M`` whose other ``M - n`` outputs are thrown away, and matrix products run
    several times nearer the CPU's peak than FFTs. Rows with
    ``8 w n <= GEMM_ADVANTAGE * 5 M log2 M`` (the narrow, low-frequency ones) go this way,
    grouped by width so that each group is a single matrix product; the others use the
    inverse FFT. Bins below ``BAND_FLOOR`` of the peak are left out of a band (their share of
    ``|W|`` is below float32 resolution).

    The FFT rows need not all use the padded length ``M`` either. The exact transform is a
    circular convolution of the padded signal with the wavelet periodised over ``M``; when the
    wavelet is (to ``TAIL_FLOOR`` of its L1 mass) no longer than ``2h + 1`` samples, every kept
    sample depends only on the ``n + 2h`` padded samples around the kept span, so a circular
    convolution of that window with an FFT of length ``L >= n + 2h`` gives the same kept
    samples. Rows are cut into a few runs sharing one such length (:func:`_fft_tiers`); the
    first rows, whose filters are cut at the Nyquist frequency and whose wavelets therefore
    decay slowly, keep ``L = M``. For 1000 samples: 7 rows at 2000, 24 at 1280, 12 at 1620 and
    28 by matrix products, about 1.6x less work than 71 FFTs of length 2000.
    """
    import torch

    bank = _bank_numpy(n, gamma, tb, nv)
    p = _pad_width(n)
    m = n + 2 * p
    n_scales = bank.shape[0]
    bands = [_band(row) for row in bank]
    budget = GEMM_ADVANTAGE * 5.0 * m * math.log2(m) / (8.0 * n)
    first = n_scales
    while first > 0 and bands[first - 1][1] <= budget:  # widths shrink with the row index
        first -= 1
    groups: list[_BandGroup] = []
    r0 = first
    while r0 < n_scales:
        width = bands[r0][1]
        r1 = r0 + 1
        while r1 < n_scales and bands[r1][1] >= GROUP_WIDTH_RATIO * width:
            width = max(width, bands[r1][1])
            r1 += 1
        gather = np.zeros((r1 - r0, width), dtype=np.int64)
        filt = np.zeros((r1 - r0, width), dtype=np.float32)
        for i, (k0, w) in enumerate(bands[r0:r1]):
            gather[i, :w] = np.arange(k0, k0 + w)
            filt[i, :w] = bank[r0 + i, k0 : k0 + w]
        j = np.arange(width)[:, None]
        t = np.arange(n)[None, :] + p
        basis = np.exp(2j * math.pi * ((j * t) % m) / m) / m
        groups.append(_BandGroup((r0, r1), torch.from_numpy(gather.ravel()),
                                 torch.from_numpy(filt),
                                 torch.from_numpy(basis.astype(np.complex64))))
        r0 = r1
    w = morse_wavelet(gamma, tb)
    scales = morse_scales(n, gamma, tb, nv)
    need = [n + 2 * int(h) for h in _half_support(bank[:first], m)]
    tiers = []
    for r0, r1, length in _fft_tiers(need, m):
        offset = (length - n) // 2
        omega = 2.0 * math.pi * np.arange(length // 2 + 1) / length
        tier_bank = (bank[r0:r1] if length == m else
                     w.filter(scales[r0:r1, None] * omega[None, :])).astype(np.float32)
        tier_bank[tier_bank < DENORMAL_FLOOR] = 0.0
        segment = _pad_index(n)[p - offset : p - offset + length].copy()
        tiers.append(_FftTier((r0, r1), length, offset, torch.from_numpy(segment),
                              torch.from_numpy(tier_bank)))
    return _TorchPlan(n, m, p, n_scales, tuple(tiers), tuple(groups))


class _Workspaces:
    """Reusable FFT buffers, lent to one worker at a time and kept between calls.

    A set holds, per FFT tier of a plan, a spectrum buffer ``(chunk, rows, L)`` whose
    negative-frequency part stays zero (only bins ``0 .. L/2`` are ever written: the wavelet is
    analytic) and an output buffer of the same shape for the inverse FFT. Keeping them saves
    a zero-fill and, more importantly, the page faults of fresh multi-megabyte allocations on
    every chunk (measured at 20-25 % of the run time). At most ``keep`` sets per shape are kept.
    """

    def __init__(self, keep: int = 4):
        self._lock = threading.Lock()
        self._free: dict[tuple[Any, ...], list[list[tuple[Any, Any]]]] = {}
        self._keep = keep

    @contextlib.contextmanager
    def lend(self, chunk: int, plan: _TorchPlan) -> Iterator[list[tuple[Any, Any]]]:
        import torch

        shapes = tuple((chunk, t.rows[1] - t.rows[0], t.length) for t in plan.tiers)
        with self._lock:
            free = self._free.setdefault(shapes, [])
            buffers = free.pop() if free else None
        if buffers is None:
            buffers = [(torch.zeros(shape, dtype=torch.complex64),
                        torch.empty(shape, dtype=torch.complex64)) for shape in shapes]
        try:
            yield buffers
        finally:
            with self._lock:
                free = self._free.setdefault(shapes, [])
                if len(free) < self._keep:
                    free.append(buffers)


_WORKSPACES = _Workspaces()


def _empty_float32(shape: tuple[int, ...]) -> np.ndarray:
    """``numpy.empty`` rather than ``torch.empty`` for the (large) result, deliberately.

    NumPy asks Linux for transparent huge pages on large allocations (``madvise``); torch's
    CPU allocator does not. A fresh 4 KiB-page result costs one page fault per 4 KiB on first
    write, measured at about 3 ms per record (a third of the compute) on this project's
    machine; with 2 MiB pages that cost all but disappears.
    """
    return np.empty(shape, dtype=np.float32)


def _magnitude_into(coefs: Any, out: Any) -> None:
    """``out = |coefs|``, overwriting ``coefs`` (scratch) with its squared parts on the way.

    ``sqrt(re^2 + im^2)`` with the squaring done in place on the interleaved (contiguous)
    real view, which vectorises; then one strided add and a square root. Measured 4x faster
    than ``torch.abs`` on complex input (``hypot``) and 1.7x faster than squaring the strided
    real and imaginary views separately.
    """
    import torch

    ri = torch.view_as_real(coefs)
    ri.mul_(ri)
    torch.add(ri[..., 0], ri[..., 1], out=out)
    out.sqrt_()


def _morse_torch_chunks(flat: Any, out: Any, plan: _TorchPlan, chunk: int) -> None:
    """Serial core of the fast path: ``out[i] = |W(flat[i])|`` chunk by chunk.

    Per chunk of signals and per FFT tier: the tier's window of the reflection-padded signal
    by one gather, its ``rfft``, the filters times the non-negative bins, one batched complex
    inverse FFT and ``|.|`` of the ``n`` kept samples. Then, for the narrow rows, one matrix
    product per width group on the full padded signal's spectrum (:func:`_torch_plan`).
    Everything is written straight into ``out``.
    """
    import torch

    n = plan.n
    n_sig = flat.shape[0]
    chunk = max(1, min(chunk, n_sig))
    full = next((i for i, t in enumerate(plan.tiers) if t.length == plan.m), None)
    with torch.inference_mode(), _WORKSPACES.lend(chunk, plan) as buffers:
        for start in range(0, n_sig, chunk):
            b = min(chunk, n_sig - start)
            x = flat[start : start + b]
            o = out[start : start + b]
            spectrum = None
            for i, (tier, (spec, coefs)) in enumerate(zip(plan.tiers, buffers, strict=True)):
                r0, r1 = tier.rows
                s = torch.fft.rfft(x.index_select(-1, tier.segment), dim=-1)
                if i == full:
                    spectrum = s
                torch.mul(s.unsqueeze(1), tier.bank, out=spec[:b, :, : tier.length // 2 + 1])
                torch.fft.ifft(spec[:b], dim=-1, out=coefs[:b])
                _magnitude_into(coefs[:b, :, tier.offset : tier.offset + n], o[:, r0:r1])
            if plan.groups and spectrum is None:
                spectrum = torch.fft.rfft(x.index_select(-1, _pad_index_torch(n)), dim=-1)
            for g in plan.groups:
                r0, r1 = g.rows
                band = spectrum.index_select(-1, g.gather).view(b, r1 - r0, -1).mul_(g.filt)
                _magnitude_into(torch.matmul(band, g.basis), o[:, r0:r1])


def _morse_torch_flat(flat: Any, n: int, gamma: float, tb: float, nv: int, chunk: int) -> Any:
    """Fast path: ``flat`` (B, n) float32 tensor -> (B, n_scales, n) float32 |W|.

    When torch has more than one thread and there is more than one chunk, the signals are cut
    into one contiguous part per thread of :func:`torch_worker_pool`.
    """
    import torch

    plan = _torch_plan(n, gamma, tb, nv)
    n_sig = flat.shape[0]
    out = torch.from_numpy(_empty_float32((n_sig, plan.n_scales, n)))
    n_chunks = -(-n_sig // chunk)
    workers = min(torch.get_num_threads(), n_chunks)
    if workers < 2:
        _morse_torch_chunks(flat, out, plan, chunk)
        return out
    per = -(-n_chunks // workers) * chunk
    with torch_worker_pool(workers) as pool:
        jobs = [pool.submit(_morse_torch_chunks, flat[s : s + per], out[s : s + per], plan, chunk)
                for s in range(0, n_sig, per)]
        for job in jobs:
            job.result()
    return out
