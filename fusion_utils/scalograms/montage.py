"""Twelve per-lead scalograms -> one RGB image (the paper's Fig. 1 montage).

The paper says only that the 12 scalograms are "combined into a single tiled 12 lead montage"
and that images are resized bilinearly to each network's input. Every other choice is made here,
documented, and exposed as a field of :class:`MontageParams` (so it is a notebook parameter and
part of the cache key):

* **Layout** (``layout``): square tiles on a grid filled as in :data:`LAYOUTS`. The default
  ``"3x4"`` is MATLAB's ``montage`` order, row by row (I II III aVR / aVL aVF V1 V2 /
  V3 V4 V5 V6); ``"4x3"`` is row by row on 4 rows (limb leads on top, chest leads below);
  ``"6x2"`` is the clinical 6x2 print (limb leads in the left column, V1-V6 in the right);
  ``"3x4-clinical"`` is the clinical 3x4 print, column by column.
* **Orientation**: within a tile, high frequencies are at the top and time runs left to right,
  as in MATLAB's image of ``abs(cfs)`` (row 1 = smallest scale).
* **Intensity** (``normalisation``): ``"per_lead"`` (default, MATLAB's ECG transfer-learning
  example: each scalogram min-max rescaled to [0, 1]); ``"per_record"`` (one min-max over all
  12 leads: keeps voltage differences between leads); ``"log"`` (``log10 |W|`` floored
  :data:`LOG_DECADES` decades below the record's maximum, then one min-max per record).
* **Colour** (``colormap``, ``n_colors``): ``"jet"`` is MATLAB's ``jet(128)`` built from its
  published formula; any other name is a matplotlib colormap resampled to ``n_colors``. The
  [0, 1] intensity is quantised as ``round(v (n_colors - 1))`` and looked up in a uint8 table.
  (MATLAB's example feeds ``im2uint8`` values 0-255 into a 128-colour map, so its upper half
  saturates to the last colour; this is treated as a slip and not reproduced.)
* **Resize** (``image_size``): the square output is partitioned into tiles at integer edges
  ``round(i * image_size / rows)``, and each lead's [0, 1] scalogram (71 x 1000 for 10 s at
  100 Hz) is resized to its tile with ``torch.nn.functional.interpolate(mode="bilinear",
  align_corners=False, antialias=True)`` *before* colouring. Antialiasing is on because the time
  axis shrinks about 18-fold (1000 samples -> 56 px); plain bilinear sampling would skip QRS
  complexes. MATLAB's ``imresize`` also antialiases when shrinking. Resizing intensities rather
  than RGB keeps every pixel on the colormap and costs one channel instead of three.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.io import stable_hash

__all__ = [
    "LAYOUTS",
    "LEADS",
    "NORMALISATIONS",
    "MontageParams",
    "colormap_lut",
    "lead_grid",
    "mean_scalograms",
    "normalise_scalograms",
    "record_to_montage",
    "records_to_montage_indices",
    "records_to_montages",
    "scalograms_to_montage",
    "tile_boxes",
]

#: PTB-XL lead order (the column order of every WFDB signal in the dataset).
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF",
                          "V1", "V2", "V3", "V4", "V5", "V6")

#: Lead names per tile, row by row. Keys are the accepted ``layout`` values.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "3x4": (("I", "II", "III", "aVR"), ("aVL", "aVF", "V1", "V2"), ("V3", "V4", "V5", "V6")),
    "4x3": (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6")),
    "6x2": (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")),
    "3x4-clinical": (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"),
                     ("III", "aVF", "V3", "V6")),
}

NORMALISATIONS: tuple[str, ...] = ("per_lead", "per_record", "log")

#: Dynamic range of the ``"log"`` normalisation, in decades below the record's maximum |W|.
LOG_DECADES = 3.0

#: Bump when the montage algorithm changes, so cached images are rebuilt.
MONTAGE_VERSION = 1


@dataclass(frozen=True)
class MontageParams:
    """Everything that determines a record's montage image (and its cache key).

    Attributes
    ----------
    wavelet : str
        ``"morse"`` (the paper) or a PyWavelets continuous wavelet (``"cmor1.5-1.0"``, ``"mexh"``).
    voices_per_octave : int
        Scales per octave (10 in the paper).
    layout : str
        A key of :data:`LAYOUTS`: ``"3x4"`` (default), ``"4x3"``, ``"6x2"``, ``"3x4-clinical"``.
    normalisation : str
        ``"per_lead"`` (default), ``"per_record"`` or ``"log"``.
    colormap : str
        ``"jet"`` (MATLAB's) or a matplotlib colormap name (``"viridis"``, ``"gray"``).
    image_size : int
        Side of the square output in pixels (224 for most backbones, 299 for Inception).
    gamma, time_bandwidth : float
        Morse wavelet parameters (3 and 60 in the paper).
    fs : float
        Sampling rate of the records in Hz (100 for ``records100``).
    n_colors : int
        Colours in the lookup table (128, as in MATLAB's example).
    """

    wavelet: str = "morse"
    voices_per_octave: int = 10
    layout: str = "3x4"
    normalisation: str = "per_lead"
    colormap: str = "jet"
    image_size: int = 224
    gamma: float = 3.0
    time_bandwidth: float = 60.0
    fs: float = 100.0
    n_colors: int = 128

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is unknown: pass one of {', '.join(LAYOUTS)}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.normalisation!r} is unknown: pass one of "
                             f"{', '.join(NORMALISATIONS)}")
        rows, cols = _grid_shape(self.layout)
        if int(self.image_size) != self.image_size or self.image_size < max(rows, cols) * 4:
            raise ValueError(f"image_size must be an integer of at least {max(rows, cols) * 4} "
                             f"pixels for layout {self.layout!r}, got {self.image_size!r}")
        if int(self.n_colors) != self.n_colors or not 2 <= self.n_colors <= 256:
            raise ValueError(f"n_colors must be an integer from 2 to 256, got {self.n_colors!r}")
        if (int(self.voices_per_octave) != self.voices_per_octave
                or not 1 <= self.voices_per_octave <= 48):
            raise ValueError("voices_per_octave must be an integer from 1 to 48, got "
                             f"{self.voices_per_octave!r}")
        if not (self.fs > 0 and math.isfinite(self.fs)):
            raise ValueError(f"fs must be a positive sampling rate in Hz, got {self.fs!r}")
        # Normalise the numeric types so that equal parameters hash equally (10 vs 10.0).
        for name, kind in (("voices_per_octave", int), ("image_size", int), ("n_colors", int),
                           ("gamma", float), ("time_bandwidth", float), ("fs", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        object.__setattr__(self, "wavelet", str(self.wavelet))
        if self.wavelet.lower() == "morse":
            object.__setattr__(self, "wavelet", "morse")
        else:
            from fusion_utils.scalograms.morse import _check_pywt_wavelet

            _check_pywt_wavelet(self.wavelet)
        colormap_lut(self.colormap, self.n_colors)  # fails early on an unknown colormap

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MontageParams:
        """Inverse of :meth:`to_dict`; unknown keys raise a ``TypeError`` naming them."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise TypeError(f"unknown MontageParams field(s) {unknown}; known: {sorted(fields)}")
        return cls(**data)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the fields and :data:`MONTAGE_VERSION` (the cache key)."""
        return stable_hash({**self.to_dict(), "montage_version": MONTAGE_VERSION})

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of the layout."""
        return _grid_shape(self.layout)


def _grid_shape(layout: str) -> tuple[int, int]:
    grid = LAYOUTS[layout]
    return len(grid), len(grid[0])


def lead_grid(layout: str = "3x4") -> tuple[tuple[int, ...], ...]:
    """Lead indices (into :data:`LEADS`) per tile, row by row.

    Examples
    --------
    >>> lead_grid("6x2")[0]
    (0, 6)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is unknown: pass one of {', '.join(LAYOUTS)}")
    return tuple(tuple(LEADS.index(name) for name in row) for row in LAYOUTS[layout])


@functools.lru_cache(maxsize=32)
def tile_boxes(
    layout: str = "3x4", image_size: int = 224,
) -> tuple[tuple[int, int, int, int, int], ...]:
    """Pixel box of every lead: ``(lead, top, bottom, left, right)``, in lead order.

    Tile edges are ``round(i * image_size / rows)`` (and likewise for columns), so the tiles
    cover the square exactly; with 224 px and 3 rows the heights are 75, 74, 75.
    """
    grid = lead_grid(layout)
    rows, cols = len(grid), len(grid[0])
    r_edges = [round(i * image_size / rows) for i in range(rows + 1)]
    c_edges = [round(j * image_size / cols) for j in range(cols + 1)]
    boxes = {}
    for i, row in enumerate(grid):
        for j, lead in enumerate(row):
            boxes[lead] = (lead, r_edges[i], r_edges[i + 1], c_edges[j], c_edges[j + 1])
    return tuple(boxes[k] for k in sorted(boxes))


def _matlab_jet(m: int) -> np.ndarray:
    """MATLAB's ``jet(m)`` (R2014b+ formula), float64 (m, 3) in [0, 1]."""
    n = math.ceil(m / 4)
    u = np.concatenate([np.arange(1, n + 1) / n, np.ones(n - 1), np.arange(n, 0, -1) / n])
    g = math.ceil(n / 2) - (1 if m % 4 == 1 else 0) + np.arange(1, len(u) + 1)
    r = g + n
    b = g - n
    g = g[g <= m]
    r = r[r <= m]
    b = b[b >= 1]
    out = np.zeros((m, 3))
    out[r - 1, 0] = u[: len(r)]
    out[g - 1, 1] = u[: len(g)]
    out[b - 1, 2] = u[len(u) - len(b):]
    return out


@functools.lru_cache(maxsize=32)
def colormap_lut(name: str = "jet", n_colors: int = 128) -> np.ndarray:
    """Colour lookup table, uint8 of shape (n_colors, 3).

    ``"jet"`` is MATLAB's ``jet(n_colors)``; other names come from matplotlib
    (``matplotlib.colormaps[name].resampled(n_colors)``).
    """
    if name == "jet":
        rgb = _matlab_jet(int(n_colors))
    else:
        import matplotlib

        try:
            cmap = matplotlib.colormaps[name]
        except KeyError as exc:
            raise ValueError(f"colormap {name!r} is unknown: pass 'jet' (MATLAB's) or a matplotlib "
                             "colormap name such as 'viridis', 'turbo', 'gray'") from exc
        rgb = cmap.resampled(int(n_colors))(np.arange(int(n_colors)))[:, :3]
    lut = np.round(rgb * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=32)
def _render_plan(layout: str, image_size: int) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """Lead order that makes equal-sized tiles contiguous, and the tile groups.

    Returns ``(order, groups)``: ``order`` lists lead indices; each group is
    ``(start, stop, h, w, boxes)`` where ``order[start:stop]`` are the leads whose tiles are
    ``h x w`` and ``boxes`` their ``(top, bottom, left, right)`` in the same order. Computing the
    scalograms in this order lets every group be resized from a view, without a gather.
    """
    by_size: dict[tuple[int, int], list[tuple[int, int, int, int, int]]] = {}
    for box in tile_boxes(layout, image_size):
        _, top, bottom, left, right = box
        by_size.setdefault((bottom - top, right - left), []).append(box)
    order: list[int] = []
    groups = []
    for (h, w), boxes in by_size.items():
        groups.append((len(order), len(order) + len(boxes), h, w,
                       tuple(b[1:] for b in boxes)))
        order.extend(b[0] for b in boxes)
    return tuple(order), tuple(groups)


def _intensity_bounds(v: Any, mode: str, lead_dim: int) -> tuple[Any, Any, Any]:
    """(values to resize, lo, hi) so that ``(resize(values) - lo) / (hi - lo)`` is in [0, 1].

    Min-max scaling is affine and bilinear interpolation is a convex combination, so the two
    commute: the bounds are taken on the full-resolution scalogram and the affine map is
    applied after resizing, on 50x fewer pixels. ``lo``/``hi`` keep the last two dims as 1.
    """
    import torch

    if mode not in NORMALISATIONS:
        raise ValueError(f"normalisation {mode!r} is unknown: "
                         f"pass one of {', '.join(NORMALISATIONS)}")
    if mode == "log":
        peak = v.amax(dim=(-2, -1), keepdim=True).amax(dim=lead_dim, keepdim=True)
        floor = (peak * 10.0 ** (-LOG_DECADES)).clamp_min(torch.finfo(torch.float32).tiny)
        v = torch.log10(torch.maximum(v, floor))
    flat = v.reshape(*v.shape[:-2], -1)
    lo = flat.amin(dim=-1)[..., None, None]
    hi = flat.amax(dim=-1)[..., None, None]
    if mode != "per_lead":
        lo = lo.amin(dim=lead_dim, keepdim=True).expand_as(lo)
        hi = hi.amax(dim=lead_dim, keepdim=True).expand_as(hi)
    return v, lo, hi


def _as_float_tensor(mag: Any) -> Any:
    import torch

    v = mag if isinstance(mag, torch.Tensor) else torch.from_numpy(np.asarray(mag))
    v = v.to(torch.float32)
    if v.ndim < 3 or v.shape[-3] != len(LEADS):
        raise ValueError("mag must have shape (..., 12, n_scales, n_samples), "
                         f"got {tuple(v.shape)}")
    return v


def normalise_scalograms(mag: Any, mode: str = "per_lead") -> Any:
    """Map |W| of shape (..., 12, n_scales, n_samples) to [0, 1] (float32 torch tensor).

    ``"per_lead"``: min-max per lead; ``"per_record"``: one min-max over the 12 leads;
    ``"log"``: ``log10(max(|W|, 10^-LOG_DECADES max))`` then one min-max per record. A constant
    input maps to 0. (The montage applies the same map after resizing; this full-resolution
    form is for figures.)
    """
    import torch

    v, lo, hi = _intensity_bounds(_as_float_tensor(mag), mode, lead_dim=-3)
    return (v - lo) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)


def _render_indices(v: Any, params: MontageParams) -> np.ndarray:
    """Lead-major scalograms (12, B, S, N) in ``_render_plan`` order -> (B, H, W) colour indices."""
    import torch
    import torch.nn.functional as F

    size, n = params.image_size, params.n_colors
    _, groups = _render_plan(params.layout, size)
    n_rec = v.shape[1]
    canvas = torch.empty((n_rec, size, size), dtype=torch.float32)
    with torch.inference_mode():
        v, lo, hi = _intensity_bounds(v, params.normalisation, lead_dim=0)
        gain = (n - 1) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
        for start, stop, h, w, boxes in groups:
            src = v[start:stop].reshape(-1, 1, *v.shape[-2:])
            tiles = F.interpolate(src, size=(h, w), mode="bilinear", align_corners=False,
                                  antialias=True).reshape(stop - start, n_rec, h, w)
            tiles = (tiles - lo[start:stop]) * gain[start:stop]
            for i, (top, bottom, left, right) in enumerate(boxes):
                canvas[:, top:bottom, left:right] = tiles[i]
        return canvas.round_().clamp_(0, n - 1).to(torch.uint8).numpy()


def _render(v: Any, params: MontageParams) -> np.ndarray:
    """Lead-major scalograms (12, B, S, N) in ``_render_plan`` order -> (B, H, W, 3) uint8."""
    return np.take(colormap_lut(params.colormap, params.n_colors), _render_indices(v, params),
                   axis=0)


def scalograms_to_montage(mag: Any, params: MontageParams | None = None) -> np.ndarray:
    """|W| of 12 leads -> montage image(s).

    Parameters
    ----------
    mag : array-like or torch.Tensor, shape (..., 12, n_scales, n_samples)
        Scalogram magnitudes in :data:`LEADS` order, rows high to low frequency.
    params : MontageParams, optional
        Layout, normalisation, colormap and size (defaults: the paper's setting).

    Returns
    -------
    numpy.ndarray, uint8, shape (..., image_size, image_size, 3)
    """
    import torch

    params = params or MontageParams()
    v = _as_float_tensor(mag)
    batch = tuple(v.shape[:-3])
    order, _ = _render_plan(params.layout, params.image_size)
    v = v.reshape(-1, *v.shape[-3:]).transpose(0, 1)[torch.tensor(order)].contiguous()
    size = params.image_size
    return _render(v, params).reshape(*batch, size, size, 3)


def _check_signal(signal: Any, where: str = "signal") -> np.ndarray:
    arr = np.asarray(signal)
    if arr.ndim != 2 or arr.shape[1] != len(LEADS):
        hint = (" (it looks transposed: pass signal.T)"
                if arr.ndim == 2 and arr.shape[0] == 12 else "")
        raise ValueError(f"{where} must have shape (n_samples, 12) in lead order "
                         f"{', '.join(LEADS)}, got {arr.shape}{hint}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where} must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where} contains NaN or infinite samples; clean them first")
    return arr


def _scalograms(x: np.ndarray, params: MontageParams) -> Any:
    """(..., n_samples) -> |W| (..., S, n_samples) float32 tensor."""
    import torch

    from fusion_utils.scalograms.morse import cwt_scalogram, morse_scalogram

    if params.wavelet == "morse":
        mag, _ = morse_scalogram(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                                 params.fs, params.gamma, params.time_bandwidth,
                                 params.voices_per_octave)
        return mag
    mag, _ = cwt_scalogram(x, params.wavelet, params.fs, params.voices_per_octave,
                           gamma=params.gamma, time_bandwidth=params.time_bandwidth)
    return torch.from_numpy(mag.astype(np.float32))


def record_to_montage(signal: Any, params: MontageParams | None = None) -> np.ndarray:
    """One 12-lead record -> its montage image.

    Parameters
    ----------
    signal : array-like, shape (n_samples, 12)
        A WFDB signal (``wfdb.rdsamp(...)[0]``) in :data:`LEADS` order, in mV.
    params : MontageParams, optional
        Defaults to the paper's setting (Morse 3/60, 10 voices, 3x4, per-lead, jet, 224 px).

    Returns
    -------
    numpy.ndarray, uint8, shape (image_size, image_size, 3)
    """
    arr = _check_signal(signal)
    return records_to_montages(arr[None], params)[0]


def _stack_records(signals: Any) -> np.ndarray | None:
    if isinstance(signals, np.ndarray) and signals.ndim == 3:
        if signals.shape[2] != len(LEADS):
            raise ValueError("signals must have shape (n_records, n_samples, 12), "
                             f"got {signals.shape}")
        if signals.dtype.kind not in "biuf":
            raise TypeError(f"signals must hold real numbers, got dtype {signals.dtype}")
        if not np.isfinite(signals).all():
            raise ValueError("signals contain NaN or infinite samples; clean them first")
        return signals
    records: Sequence[Any] = list(signals)
    checked = [_check_signal(s, f"signals[{i}]") for i, s in enumerate(records)]
    lengths = {c.shape[0] for c in checked}
    if len(lengths) > 1:
        raise ValueError(f"records differ in length ({sorted(lengths)} samples): crop or "
                         "resample them to one length first")
    return np.stack(checked) if checked else None


def records_to_montage_indices(
    signals: Any,
    params: MontageParams | None = None,
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """Like :func:`records_to_montages` but returns colour indices (n_records, H, W) uint8.

    ``colormap_lut(params.colormap, params.n_colors)[indices]`` is the RGB montage; the cache
    stores the indices as a palette PNG (3x smaller and faster than RGB).
    """
    params = params or MontageParams()
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive number of records, got {batch_size!r}")
    size = params.image_size
    stack = _stack_records(signals)
    if stack is None:
        return np.zeros((0, size, size), dtype=np.uint8)
    from fusion_utils.scalograms.morse import torch_worker_pool

    order = np.asarray(_render_plan(params.layout, size)[0])
    out = np.empty((stack.shape[0], size, size), dtype=np.uint8)
    step = int(batch_size)

    def run(start: int) -> None:
        block = stack[start : start + step]
        lead_major = np.ascontiguousarray(block[:, :, order].transpose(2, 0, 1))  # (12, b, n)
        out[start : start + block.shape[0]] = _render_indices(_scalograms(lead_major, params),
                                                              params)

    starts = range(0, stack.shape[0], step)
    # Whole batches (CWT + image) run on separate single-threaded torch workers.
    with torch_worker_pool(None if len(starts) > 1 else 1) as pool:
        if pool is None:
            for start in starts:
                run(start)
        else:
            for job in [pool.submit(run, start) for start in starts]:
                job.result()
    return out


def records_to_montages(
    signals: Any,
    params: MontageParams | None = None,
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """Many records -> montage images, computed ``batch_size`` records at a time.

    Parameters
    ----------
    signals : array-like of shape (n_records, n_samples, 12), or a sequence of (n_samples, 12)
        Records of equal length, leads in :data:`LEADS` order.
    params : MontageParams, optional
    batch_size : int
        Records per CWT batch; memory is about ``batch_size x 3.4 MB`` per torch thread for
        10 s at 100 Hz. Batches run in parallel on
        :func:`~fusion_utils.scalograms.morse.torch_worker_pool` threads (one per torch thread).

    Returns
    -------
    numpy.ndarray, uint8, shape (n_records, image_size, image_size, 3)
    """
    keep_freed_memory()  # large blocks: no mmap/munmap per batch
    params = params or MontageParams()
    idx = records_to_montage_indices(signals, params, batch_size=batch_size)
    return np.take(colormap_lut(params.colormap, params.n_colors), idx, axis=0)


def mean_scalograms(
    signals: Iterable[Any],
    params: MontageParams | None = None,
    *,
    batch_size: int = 16,
) -> tuple[np.ndarray, int]:
    """Average of the records' normalised scalograms, streamed (a class-average picture).

    Parameters
    ----------
    signals : iterable of array-like (n_samples, 12)
        Records of equal length (for example a generator that loads them one by one).
    params : MontageParams, optional
        Wavelet and ``normalisation`` (each record is normalised before averaging, as it would
        be in its montage).
    batch_size : int
        Records transformed together; memory stays at one batch of scalograms.

    Returns
    -------
    mean : numpy.ndarray, float64, shape (12, n_scales, n_samples)
        In :data:`LEADS` order, values in [0, 1].
    n : int
        Number of records averaged.
    """
    params = params or MontageParams()
    total: np.ndarray | None = None
    count = 0
    batch: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None

    def flush() -> None:
        nonlocal total, count
        stack = np.stack(batch)
        mag = _scalograms(np.ascontiguousarray(np.swapaxes(stack, 1, 2)), params)
        part = normalise_scalograms(mag, params.normalisation).sum(dim=0).double().numpy()
        total = part if total is None else total + part
        count += len(batch)
        batch.clear()

    for i, signal in enumerate(signals):
        arr = _check_signal(signal, f"signals[{i}]")
        shape = arr.shape if shape is None else shape
        if arr.shape != shape:
            raise ValueError(f"signals[{i}] has {arr.shape[0]} samples, earlier records "
                             f"{shape[0]}: average records of one length")
        batch.append(arr)
        if len(batch) >= int(batch_size):
            flush()
    if batch:
        flush()
    if total is None:
        raise ValueError("signals is empty: nothing to average")
    return total / count, count
