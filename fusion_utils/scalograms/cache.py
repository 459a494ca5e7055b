"""One montage image per PTB-XL record on disk, keyed by the montage parameters.

Layout (``root`` defaults to ``fusion_utils.paths.cache_dir("scalograms")``)::

    <root>/<params.key()>/params.json                         the parameters, written first
    <root>/<params.key()>/<dataset>-<hash8>/records100/00000/00001_lr.png

* **Parameters**: every field of :class:`~fusion_utils.scalograms.montage.MontageParams` (and
  the montage algorithm's version) goes into the 16-hex-digit key, so a different parameter set
  lives in a different folder and never serves stale images; ``params.json`` says what a folder
  holds.
* **Dataset folder**: the record's PTB-XL root (the folder above ``records100``) is named by its
  folder name and a hash of its absolute path, so the demo cohort and the real dataset (both
  have ``records100/00000/00001_lr``) never share a file. The rest mirrors PTB-XL's layout.
* **Freshness**: an image older than its record's ``.dat``/``.hea`` is recomputed (a rebuilt demo
  cohort invalidates its images).
* **Format**: 8-bit palette PNG (the colour indices plus the colormap as palette): the RGB image
  comes back exactly, at a third of the size and encoding time of an RGB PNG (about 32 KB per
  record, 0.7 GB for PTB-XL).
* **Safety**: every image is written to a temporary file in its folder and renamed into place
  (:func:`fusion_utils.io.atomic_path`), so an interruption leaves no partial image, and a
  re-run of :meth:`ScalogramCache.build` resumes where it stopped. Records stream in batches;
  memory stays bounded whatever the number of records.
* **Verification**: a cached image is decoded (:meth:`ScalogramCache.get`) or its PNG chunks'
  CRCs checked (:meth:`ScalogramCache.build`) before it is served; a damaged image (truncated,
  overwritten) is rebuilt with a warning naming it, as is an unreadable ``params.json``.
* **Bad leads**: a record with missing samples (WFDB's missing value, NaN after
  :func:`~fusion_utils.data.ptbxl.load_signal`) or flat leads is handled by the ``bad_leads``
  policy (:func:`~fusion_utils.data.ptbxl.apply_bad_leads`): ``"drop"`` (default: no image; the
  build warns with the count and the records and lists them in ``summary.dropped``),
  ``"interpolate"`` (gaps filled linearly, flat leads kept; the image is stored as
  ``<name>.interpolated.png`` so a ``"drop"`` cache never serves it; listed in
  ``summary.repaired``, with a warning) or ``"error"``. A record that is flat in every lead is
  never turned into a one-colour montage without a warning.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusion_utils.errors import DataError, ScalogramError, describe
from fusion_utils.io import atomic_path, atomic_write_json, stable_hash
from fusion_utils.paths import cache_dir
from fusion_utils.scalograms.montage import (
    MONTAGE_VERSION,
    MontageParams,
    colormap_lut,
    records_to_montage_indices,
)

__all__ = ["BuildSummary", "MontageParams", "ScalogramCache", "ScalogramFolderConflict",
           "record_dataset_dir"]

_RECORDS_DIR = re.compile(r"^records\d+$")
_PNG_COMPRESS_LEVEL = 3
_REPAIRED_SUFFIX = ".interpolated.png"
_MAX_NAMED = 10


class ScalogramFolderConflict(ScalogramError, RuntimeError):
    """``params.json`` of a cache folder describes other parameters than the folder's key."""


def _record_base(record_path: str | os.PathLike[str]) -> Path:
    path = Path(record_path)
    if path.suffix in (".hea", ".dat"):
        path = path.with_suffix("")
    return path


def record_dataset_dir(record_path: str | os.PathLike[str]) -> tuple[Path, tuple[str, ...]]:
    """Split a WFDB record base path into (dataset folder, path parts below it).

    ``.../ptbxl/records100/00000/00001_lr`` -> ``(.../ptbxl, ("records100", "00000", "00001_lr"))``;
    a record outside a ``recordsNNN/`` tree is kept by its folder and name.
    """
    base = _record_base(record_path).expanduser().absolute()
    if len(base.parents) >= 3 and _RECORDS_DIR.match(base.parent.parent.name):
        return base.parents[2], base.parts[-3:]
    return base.parent, (base.name,)


@dataclass
class BuildSummary:
    """What :meth:`ScalogramCache.build` did."""

    n_records: int
    computed: int
    cached: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    folder: str = ""
    dropped: list[tuple[str, str]] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        """Computed records per second of wall time (cached ones excluded)."""
        return self.computed / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, with ``records_per_s`` and the number of failures."""
        return {"n_records": self.n_records, "computed": self.computed, "cached": self.cached,
                "n_failed": len(self.failed), "failed": [list(f) for f in self.failed],
                "seconds": self.seconds, "records_per_s": self.records_per_s,
                "folder": self.folder, "n_dropped": len(self.dropped),
                "dropped": [list(d) for d in self.dropped], "n_repaired": len(self.repaired),
                "repaired": [list(r) for r in self.repaired], "rebuilt": list(self.rebuilt)}

    def __str__(self) -> str:
        extra = "".join(f", {len(v)} {k}" for k, v in (("dropped (bad leads)", self.dropped),
                                                        ("interpolated", self.repaired),
                                                        ("damaged and rebuilt", self.rebuilt))
                        if v)
        return (f"{self.n_records} records: {self.computed} computed, "
                f"{self.cached} already cached, "
                f"{len(self.failed)} failed{extra} in {self.seconds:.1f} s "
                f"({self.records_per_s:.1f} records/s computed) -> {self.folder}")


class ScalogramCache:
    """Montage images of PTB-XL records, computed on first use and kept on disk.

    Parameters
    ----------
    root : path-like, optional
        Cache root; default ``fusion_utils.paths.cache_dir("scalograms")``.
    params : MontageParams, optional
        How montages are made (default: the paper's setting). ``params.fs`` must be the records'
        sampling rate (100 for ``records100``, 500 for ``records500``).
    bad_leads : {"drop", "interpolate", "error"}
        What to do with a record that has missing samples or flat leads (see the module
        docstring and :func:`fusion_utils.data.ptbxl.apply_bad_leads`).

    Examples
    --------
    >>> cache = ScalogramCache()  # doctest: +SKIP
    >>> cache.build(manifest["path"])  # doctest: +SKIP
    >>> image = cache.get(manifest["path"].iloc[0])  # (224, 224, 3) uint8  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 params: MontageParams | None = None, *, bad_leads: str = "drop") -> None:
        from fusion_utils.data.ptbxl import BAD_LEADS_POLICIES

        if bad_leads not in BAD_LEADS_POLICIES:
            raise ValueError(f"bad_leads={bad_leads!r}: choose one of "
                             f"{', '.join(BAD_LEADS_POLICIES)}")
        self.bad_leads = bad_leads
        if params is None:
            params = MontageParams()
        if not isinstance(params, MontageParams):
            raise TypeError(f"params must be a fusion_utils.scalograms.montage.MontageParams, got "
                            f"{type(params).__name__}")
        rate = float(params.fs)
        if rate not in (100.0, 500.0):
            raise ValueError(f"params.fs={params.fs} Hz: PTB-XL records are 100 Hz (records100) or "
                             "500 Hz (records500); pass MontageParams(fs=100) or fs=500")
        self.root = Path(root) if root is not None else cache_dir("scalograms")
        self.params = params
        self.sampling_rate = int(rate)
        self._palette = [int(v) for v in colormap_lut(params.colormap, params.n_colors).ravel()]
        self._params_checked = False

    def __repr__(self) -> str:
        return f"ScalogramCache(root={str(self.root)!r}, key={self.params.key()!r})"

    @property
    def folder(self) -> Path:
        """``<root>/<params.key()>``: everything made with these parameters."""
        return self.root / self.params.key()

    def path_for(self, record_path: str | os.PathLike[str]) -> Path:
        """Where the montage of ``record_path`` (a WFDB base path, as in the manifest) is stored."""
        dataset_dir, parts = record_dataset_dir(record_path)
        tag = f"{dataset_dir.name or 'records'}-{stable_hash(str(dataset_dir), 8)}"
        return self.folder.joinpath(tag, *parts[:-1], parts[-1] + ".png")

    def is_cached(self, record_path: str | os.PathLike[str]) -> bool:
        """True when a montage exists and is newer than the record's files (not decoded)."""
        return self._cached_path(record_path) is not None

    def _cached_path(self, record_path: str | os.PathLike[str]) -> Path | None:
        """The fresh image serving ``record_path`` under this policy, or ``None``."""
        path = self.path_for(record_path)
        base = _record_base(record_path)
        if self._fresh(path, base):
            return path
        if self.bad_leads == "interpolate":
            repaired = _repaired_path(path)
            if self._fresh(repaired, base):
                return repaired
        return None

    @staticmethod
    def _fresh(image: Path, base: Path) -> bool:
        try:
            made = image.stat().st_mtime
        except FileNotFoundError:
            return False
        for ext in (".dat", ".hea"):
            try:
                if base.with_name(base.name + ext).stat().st_mtime > made:
                    return False
            except FileNotFoundError:
                continue
        return True

    def _ensure_params_file(self) -> None:
        if self._params_checked:
            return
        path = self.folder / "params.json"
        record = {"key": self.params.key(), "montage_version": MONTAGE_VERSION,
                  "params": self.params.to_dict()}
        found = None
        if path.is_file():
            import json

            try:
                found = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(found, dict):
                    raise ValueError(f"a JSON {type(found).__name__}, not an object")
            except (ValueError, UnicodeDecodeError) as exc:
                # The folder name is the hash of the parameters, so the images are still this
                # parameter set's; only the description is lost: write it again.
                warnings.warn(f"{path}: damaged params.json ({exc}); rewritten from the "
                              "parameters (the folder name is their hash)", stacklevel=3)
                found = None
        if found is not None:
            if found.get("params") != record["params"] or found.get("key") != record["key"]:
                raise ScalogramFolderConflict(describe(
                    path, f"describes other parameters than {self.params}",
                    "the folder is not this parameter set's: remove it to rebuild"))
        else:
            atomic_write_json(path, record)
        self._params_checked = True

    def _load_signal(self, record_path: str | os.PathLike[str]) -> np.ndarray:
        from fusion_utils.data.ptbxl import load_signal

        return load_signal(_record_base(record_path), self.sampling_rate)

    def _checked_signal(self, record_path: str | os.PathLike[str]
                        ) -> tuple[np.ndarray | None, str]:
        """The record's signal after the ``bad_leads`` policy, and what was wrong with it."""
        from fusion_utils.data.ptbxl import apply_bad_leads

        signal = self._load_signal(record_path)
        return apply_bad_leads(signal, self.bad_leads, where=_record_base(record_path))

    def _write(self, path: Path, indices: np.ndarray) -> None:
        from PIL import Image

        image = Image.fromarray(indices, mode="P")
        image.putpalette(self._palette)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    def _read_checked(self, path: Path) -> np.ndarray | None:
        """Decode a cached image; ``None`` (after a warning naming it) when it is damaged."""
        try:
            image = self._read(path)
        except (OSError, SyntaxError, ValueError) as exc:
            _warn_damaged(path, exc)
            return None
        size = self.params.image_size
        if image.shape != (size, size, 3):
            _warn_damaged(path, f"shape {image.shape}, expected {(size, size, 3)}")
            return None
        return image

    def get(self, record_path: str | os.PathLike[str]) -> np.ndarray:
        """The record's montage, uint8 (H, W, 3); computed and stored when missing, stale or
        damaged (decoded before it is served).

        Raises
        ------
        fusion_utils.errors.DataError
            The record has missing samples or flat leads and ``bad_leads`` is ``"drop"`` (no
            montage is made for it) or ``"error"``.
        """
        cached = self._cached_path(record_path)
        if cached is not None:
            image = self._read_checked(cached)
            if image is not None:
                return image
        self._ensure_params_file()
        signal, problem = self._checked_signal(record_path)
        if signal is None:
            raise DataError(describe(
                _record_base(record_path), f"{problem}: dropped by bad_leads='drop'",
                "remove the record from the manifest or use bad_leads='interpolate'"))
        path = self.path_for(record_path)
        if problem:
            warnings.warn(f"{_record_base(record_path)}: {problem}; "
                          f"montage made after bad_leads={self.bad_leads!r}", stacklevel=2)
            path = _repaired_path(path)
        indices = records_to_montage_indices(signal[None], self.params)[0]
        self._write(path, indices)
        return np.take(colormap_lut(self.params.colormap, self.params.n_colors), indices, axis=0)

    def build(
        self,
        record_paths: Iterable[str | os.PathLike[str]],
        progress: bool = True,
        *,
        batch_size: int = 64,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> BuildSummary:
        """Compute every missing montage, ``batch_size`` records at a time.

        Parameters
        ----------
        record_paths : iterable of path-like
            WFDB base paths (the manifest's ``path`` column).
        progress : bool
            Show a tqdm progress bar.
        batch_size : int
            Records loaded and transformed together (memory ~ batch_size x 3.5 MB).
        on_error : {"raise", "skip"}
            What to do with a record that cannot be read: stop (default; images already written
            stay, so a re-run resumes) or list it in ``summary.failed`` and go on.

        Records with missing samples or flat leads follow ``bad_leads`` (``summary.dropped``,
        ``summary.repaired``); damaged cached images are rebuilt (``summary.rebuilt``). Each
        of these is announced by one warning with the count and the first records.

        Returns
        -------
        BuildSummary
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive number of records, got {batch_size!r}")
        paths = [str(p) for p in record_paths]
        summary = BuildSummary(n_records=len(paths), computed=0, cached=0, folder=str(self.folder))
        if paths:
            self._ensure_params_file()
        start = time.perf_counter()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), desc="scalogram montages", unit="rec", mininterval=1.0,
                       disable=None)  # None: quiet when not a terminal
        # Two threads beside the main one: the next batch is read while torch transforms the
        # current one, and PNGs are encoded (zlib and file I/O release the GIL) meanwhile.
        step = int(batch_size)
        batches = [paths[i : i + step] for i in range(0, len(paths), step)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            ahead = pool.submit(self._prepare, batches[0], on_error) if batches else None
            writes: list[Any] = []
            for j, batch in enumerate(batches):
                n_cached, signals, targets, failures = ahead.result()
                ahead = (pool.submit(self._prepare, batches[j + 1], on_error)
                         if j + 1 < len(batches) else None)
                summary.cached += n_cached
                for kind, item in failures:
                    getattr(summary, kind).append(item)
                for group in _group_by_length(signals):
                    idx = records_to_montage_indices(np.stack([signals[i] for i in group]),
                                                     self.params)
                    writes.extend(pool.submit(self._write, targets[i], idx[k])
                                  for k, i in enumerate(group))
                for fut in writes:
                    fut.result()
                summary.computed += len(writes)
                writes = []
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - start
        _announce(summary, self.bad_leads)
        return summary

    def _prepare(self, batch: list[str], on_error: str
                 ) -> tuple[int, list[np.ndarray], list[Path], list[tuple[str, Any]]]:
        """Skip fresh, intact images and read the others: (n_cached, signals, targets, events).

        ``events`` are ``(summary field, item)`` pairs: ``failed``, ``dropped``, ``repaired``
        (``(path, problem)``) and ``rebuilt`` (the damaged image's path).
        """
        signals, targets, events = [], [], []
        n_cached = 0
        for path in batch:
            cached = self._cached_path(path)
            if cached is not None:
                problem = _png_problem(cached)
                if problem is None:
                    n_cached += 1
                    continue
                events.append(("rebuilt", str(cached)))
            try:
                signal, problem = self._checked_signal(path)
            except Exception as exc:
                if on_error == "raise":
                    raise
                events.append(("failed", (path, f"{type(exc).__name__}: {exc}")))
                continue
            image = self.path_for(path)
            if signal is None:
                events.append(("dropped", (path, problem)))
                continue
            if problem:
                events.append(("repaired", (path, problem)))
                image = _repaired_path(image)
            signals.append(signal)
            targets.append(image)
        return n_cached, signals, targets, events

    def clear(self) -> int:
        """Delete this parameter set's folder; return the number of images removed."""
        import shutil

        if not self.folder.is_dir():
            return 0
        if not (self.folder / "params.json").is_file():
            raise RuntimeError(f"{self.folder} has no params.json: not a scalogram cache folder, "
                               "left untouched")
        n = sum(1 for _ in self.folder.rglob("*.png"))  # interpolated ones included
        shutil.rmtree(self.folder)
        self._params_checked = False
        return n


def _group_by_length(signals: list[np.ndarray]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(signals):
        groups.setdefault(s.shape[0], []).append(i)
    return list(groups.values())


def _repaired_path(path: Path) -> Path:
    """Where the montage of a record repaired by ``bad_leads="interpolate"`` is stored."""
    return path.with_name(path.name[: -len(".png")] + _REPAIRED_SUFFIX)


def _png_problem(path: Path) -> str | None:
    """``None`` when the PNG's structure and chunk CRCs are intact, else what is wrong.

    ``PIL.Image.verify`` reads every chunk and checks its CRC without decoding pixels (about a
    tenth of the cost of a decode); a truncated or overwritten file fails it.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _warn_damaged(path: Path, problem: object) -> None:
    warnings.warn(f"{path}: damaged cached montage ({problem}); rebuilding it", stacklevel=3)


def _named(items: list[Any]) -> str:
    names = [Path(str(i[0] if isinstance(i, tuple) else i)).name for i in items[:_MAX_NAMED]]
    more = f" and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else ""
    return ", ".join(names) + more


def _announce(summary: BuildSummary, policy: str) -> None:
    """One warning per kind of event, with the count and the first records."""
    if summary.rebuilt:
        warnings.warn(f"{summary.folder}: {len(summary.rebuilt)} damaged cached montage(s) "
                      f"rebuilt: {_named(summary.rebuilt)}", stacklevel=3)
    if summary.dropped:
        examples = "; ".join(f"{Path(p).name}: {why}" for p, why in summary.dropped[:3])
        warnings.warn(f"{len(summary.dropped)} record(s) with missing samples or flat leads "
                      f"dropped (bad_leads={policy!r}, no montage made): "
                      f"{_named(summary.dropped)} ({examples}); see summary.dropped, or pass "
                      "bad_leads='interpolate' to keep them", stacklevel=3)
    if summary.repaired:
        warnings.warn(f"{len(summary.repaired)} record(s) with missing samples or flat leads "
                      f"kept after bad_leads={policy!r}: {_named(summary.repaired)}; "
                      "see summary.repaired", stacklevel=3)
