"""One montage image per PTB-XL record on disk, keyed by the montage parameters.

Layout (``root`` defaults to ``fusion_utils.paths.cache_dir("scalograms")``)::

    <root>/<params.key()>/params.json                         the parameters, written first
    <root>/<params.key()>/<dataset>-<hash8>/records100/00000/00001_lr.png

* **Parameters**: every field of :class:`~fusion_utils.scalograms.montage.MontageParams` (and the montage
  algorithm's version) goes into the 16-hex-digit key, so a different parameter set lives in a
  different folder and never serves stale images; ``params.json`` says what a folder holds.
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
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusion_utils.io import atomic_path, atomic_write_json, stable_hash
from fusion_utils.paths import cache_dir
from fusion_utils.scalograms.montage import (
    MONTAGE_VERSION,
    MontageParams,
    colormap_lut,
    records_to_montage_indices,
)

__all__ = ["BuildSummary", "MontageParams", "ScalogramCache", "record_dataset_dir"]

_RECORDS_DIR = re.compile(r"^records\d+$")
_PNG_COMPRESS_LEVEL = 3


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

    @property
    def records_per_s(self) -> float:
        """Computed records per second of wall time (cached ones excluded)."""
        return self.computed / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, with ``records_per_s`` and the number of failures."""
        return {"n_records": self.n_records, "computed": self.computed, "cached": self.cached,
                "n_failed": len(self.failed), "failed": [list(f) for f in self.failed],
                "seconds": self.seconds, "records_per_s": self.records_per_s,
                "folder": self.folder}

    def __str__(self) -> str:
        return (f"{self.n_records} records: {self.computed} computed, {self.cached} already cached, "
                f"{len(self.failed)} failed in {self.seconds:.1f} s "
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

    Examples
    --------
    >>> cache = ScalogramCache()  # doctest: +SKIP
    >>> cache.build(manifest["path"])  # doctest: +SKIP
    >>> image = cache.get(manifest["path"].iloc[0])  # (224, 224, 3) uint8  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 params: MontageParams | None = None) -> None:
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
        """True when a montage exists and is newer than the record's files."""
        return self._fresh(self.path_for(record_path), _record_base(record_path))

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
        if path.is_file():
            import json

            found = json.loads(path.read_text(encoding="utf-8"))
            if found.get("params") != record["params"] or found.get("key") != record["key"]:
                raise RuntimeError(f"{path} describes other parameters than {self.params}; the "
                                   "folder is not this parameter set's: remove it to rebuild")
        else:
            atomic_write_json(path, record)
        self._params_checked = True

    def _load_signal(self, record_path: str | os.PathLike[str]) -> np.ndarray:
        from fusion_utils.data.ptbxl import load_signal

        return load_signal(_record_base(record_path), self.sampling_rate)

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

    def get(self, record_path: str | os.PathLike[str]) -> np.ndarray:
        """The record's montage, uint8 (H, W, 3); computed and stored when missing or stale."""
        path = self.path_for(record_path)
        if self._fresh(path, _record_base(record_path)):
            return self._read(path)
        self._ensure_params_file()
        signal = self._load_signal(record_path)
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
                ahead = pool.submit(self._prepare, batches[j + 1], on_error) if j + 1 < len(batches) else None
                summary.cached += n_cached
                summary.failed.extend(failures)
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
        return summary

    def _prepare(self, batch: list[str], on_error: str
                 ) -> tuple[int, list[np.ndarray], list[Path], list[tuple[str, str]]]:
        """Skip fresh images and read the others: (n_cached, signals, targets, failures)."""
        signals, targets, failures = [], [], []
        n_cached = 0
        for path in batch:
            image = self.path_for(path)
            if self._fresh(image, _record_base(path)):
                n_cached += 1
                continue
            try:
                signals.append(self._load_signal(path))
            except Exception as exc:
                if on_error == "raise":
                    raise
                failures.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            targets.append(image)
        return n_cached, signals, targets, failures

    def clear(self) -> int:
        """Delete this parameter set's folder; return the number of images removed."""
        import shutil

        if not self.folder.is_dir():
            return 0
        if not (self.folder / "params.json").is_file():
            raise RuntimeError(f"{self.folder} has no params.json: not a scalogram cache folder, "
                               "left untouched")
        n = sum(1 for _ in self.folder.rglob("*.png"))
        shutil.rmtree(self.folder)
        self._params_checked = False
        return n


def _group_by_length(signals: list[np.ndarray]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(signals):
        groups.setdefault(s.shape[0], []).append(i)
    return list(groups.values())
