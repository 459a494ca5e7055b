"""Auto-encoder features atop a frozen CNN (after Ahn et al. 2019, arXiv 1903.06342).

A convolutional auto-encoder is trained **without labels** on the last convolutional feature maps
of a frozen ImageNet backbone; the global average of its code is a new image representation F(X)
for the softmax classifier of chapter 04, compared with the backbone's bottleneck (BN) and
fine-tuned (FT) features.

Architecture and the choices the paper leaves open
--------------------------------------------------
Ahn et al. put a convolutional auto-encoder (convolution, max-pooling that keeps its indices,
unpooling with those indices, a decoder initialised from the encoder's weights) on top of a frozen
pretrained network. What they do not fix for this book's data is fixed here, with the reason:

* **Input**: the maps that the backbone's global average pool receives (``efficientnet_lite0``:
  1280 x 7 x 7 after the head convolution, BatchNorm and ReLU6), so the BN vector is exactly their
  spatial mean (tested). Each channel is standardised with the mean and standard deviation of the
  training records' maps (the maps' scales differ by channel; MSE would otherwise be dominated by
  a few channels).
* **Encoder**: one ``Conv2d(1280, code_channels, kernel_size, padding=kernel_size // 2)`` and
  ReLU; ``code_channels=64``, ``kernel_size=3`` (a 3 x 3 neighbourhood on the 7 x 7 grid; 64
  channels keep one epoch over the real PTB-XL training split near a minute on 2 CPU cores).
* **Pooling**: ``MaxPool2d(2, stride=2, ceil_mode=True, return_indices=True)``: 7 x 7 -> 4 x 4,
  so the code is ``code_channels x 4 x 4``.
* **Decoder**: ``MaxUnpool2d`` with the pooling's indices back to 7 x 7, then
  ``ConvTranspose2d(code_channels, 1280, kernel_size, padding=kernel_size // 2)`` whose weight is
  initialised as a copy of the encoder's (a transposed convolution applies the transpose of the
  same tensor: tied initialisation, untied training); its bias starts at 0; no output activation
  (standardised maps are not bounded).
* **Loss**: mean squared reconstruction error of the standardised maps.
* **Optimiser**: Adam, learning rate 1e-3, no weight decay, mini-batches of 32, ``epochs=10``
  (demo and real; ``AEConfig``), seeded order of chunks and records per epoch.
* **Training records**: the ``train`` split only, without labels; validation and test images are
  never seen, so the representation is not transductive.
* **F(X)**: the code after max-pooling, averaged over its 4 x 4 grid (``code_channels`` values).

Cache, memory and resumption
----------------------------
The maps are computed once per (manifest rows, input files, backbone, weights, preprocessing) key,
the key of :func:`fusion_utils.features.extraction.feature_cache_key` plus the layer and dtype,
and stored as **float16** ``.npy`` chunks of ``chunk_size`` records under
``paths.cache_dir("feature_maps")/<backbone>-<hash>/`` with an index (``maps.json``: key, shape,
each chunk's SHA-256), all written atomically (:mod:`fusion_utils.io`). A chunk whose hash does
not match is rejected (:class:`~fusion_utils.errors.FeatureError` on reading; recomputed with a
warning on building); an interrupted build keeps its finished chunks.

Memory at the real HAM10000 size: 10,015 images x 1280 x 7 x 7 values = 628 million values,
1.26 GB as float16 on disk (2.51 GB if they were float32). Training and encoding read the chunks
as memory maps (``np.load(mmap_mode="r")``), one chunk (256 x 1280 x 49 x 2 bytes = 32 MB) at a
time, and turn only a mini-batch (32 x 1280 x 49 x 4 bytes = 8 MB) into float32: the resident
size stays well under 1 GB whatever the cohort size. The standardisation statistics are summed
chunk by chunk in float64.

Training writes ``autoencoder.pt`` (model, optimiser, epoch, loss history, statistics, config)
atomically after every epoch into its checkpoint folder; a later call with the same maps and
config resumes after the last finished epoch, and the order of each epoch depends only on
``(seed, epoch)``, so an interrupted and resumed run ends with the same weights as an
uninterrupted one (tested).

Real data: ``python -m fusion_utils.features.autoencoder real --dataset ptbxl`` writes
``results/real/autoencoder/ptbxl.parquet`` and ``PROVENANCE.json``. HAM10000 (10,015 images,
``--dataset ham10000``) costs about 20 minutes of map extraction at ~8 images/s on 2 CPU cores
plus the training; it is documented, not run in the book.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.errors import FeatureError, describe
from fusion_utils.io import atomic_path, atomic_write_json, file_sha256, stable_hash

__all__ = [
    "MAPS_VERSION",
    "AEConfig",
    "ConvAutoEncoder",
    "FeatureMapCache",
    "answer",
    "autoencoder_features",
    "committed_autoencoder",
    "compare_features",
    "encode",
    "feature_map_cache_key",
    "run_real",
    "summary_table",
    "train_autoencoder",
]

MAPS_VERSION = 1
MAPS_DTYPE = np.float16
# (family, metadata) of each compared model: BN, AE and FT features, image-only and fused.
MODELS = {"bn": ("BN", "no"), "ae": ("AE", "no"), "ft": ("FT", "no"),
          "bn+meta": ("BN", "yes"), "ae+meta": ("AE", "yes"), "ft+meta": ("FT", "yes")}


# --------------------------------------------------------------------------- the model

@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Settings of the auto-encoder and its training (module docstring: why these values)."""

    code_channels: int = 64
    kernel_size: int = 3
    pool: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("code_channels", "kernel_size", "pool", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AEConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"AEConfig.kernel_size must be odd (same padding), got "
                             f"{self.kernel_size}")
        if not self.lr > 0:
            raise ValueError(f"AEConfig.lr must be > 0, got {self.lr!r}")

    def training_key(self) -> dict[str, Any]:
        """Everything but ``epochs``: a longer run resumes a shorter one's checkpoint."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "epochs"}


class ConvAutoEncoder(nn.Module):
    """Conv encoder, max-pooling with indices, unpooling with them, tied-initialised decoder.

    Parameters
    ----------
    in_channels : int
        Channels of the backbone's maps (1280 for EfficientNet-Lite).
    code_channels, kernel_size, pool : int
        See :class:`AEConfig`.
    """

    def __init__(self, in_channels: int, code_channels: int = 64, kernel_size: int = 3,
                 pool: int = 2) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.encoder = nn.Conv2d(in_channels, code_channels, kernel_size, padding=pad)
        self.pool = nn.MaxPool2d(pool, stride=pool, ceil_mode=True, return_indices=True)
        self.unpool = nn.MaxUnpool2d(pool, stride=pool)
        self.decoder = nn.ConvTranspose2d(code_channels, in_channels, kernel_size, padding=pad)
        with torch.no_grad():  # Conv2d (out, in, k, k) and ConvTranspose2d (in, out, k, k) agree
            self.decoder.weight.copy_(self.encoder.weight)
            self.decoder.bias.zero_()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        """``(code, pooling indices, size before pooling)``."""
        h = torch.relu(self.encoder(x))
        code, indices = self.pool(h)
        return code, indices, h.shape

    def decode(self, code: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """Unpool with the encoder's indices to ``size``, then the transposed convolution."""
        return self.decoder(self.unpool(code, indices, output_size=size[-2:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x``."""
        return self.decode(*self.encode(x))

    def pooled_code(self, x: torch.Tensor) -> torch.Tensor:
        """F(X): the pooled code averaged over its grid, ``(n, code_channels)``."""
        return self.encode(x)[0].mean(dim=(2, 3))


# --------------------------------------------------------------------------- the map cache

def feature_map_cache_key(manifest: pd.DataFrame, backbone: str = "efficientnet_lite0",
                          weights: Any = "imagenet", precision: str = "float32",
                          image_source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The BN feature cache key (:func:`~fusion_utils.features.extraction.feature_cache_key`)
    plus the layer (the global pool's input), the stored dtype and :data:`MAPS_VERSION`."""
    from fusion_utils.features.extraction import feature_cache_key

    key = feature_cache_key(manifest, backbone, weights, "bn", None, 0, precision,
                            image_source=image_source)
    key.update(maps="input of the global average pool", dtype="float16",
               maps_version=MAPS_VERSION)
    return key


def _pool_input_hook(model: nn.Module, store: list[torch.Tensor]) -> Any:
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise FeatureError("the backbone has no nn.AdaptiveAvgPool2d module whose input could be "
                           "captured as its last convolutional maps")
    return pools[-1].register_forward_pre_hook(lambda _m, args: store.append(args[0]))


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _write_chunk(entry: Path, k: int, start: int, maps: np.ndarray) -> dict[str, Any]:
    """Write chunk ``k`` atomically as float16 ``.npy``; return its index entry (with SHA-256)."""
    import hashlib

    name = f"chunk_{k:05d}.npy"
    data = _npy_bytes(np.ascontiguousarray(maps, dtype=MAPS_DTYPE))
    with atomic_path(entry / name) as tmp:
        tmp.write_bytes(data)
    return {"file": name, "start": int(start), "count": len(maps),
            "sha256": hashlib.sha256(data).hexdigest()}


class FeatureMapCache:
    """Float16 feature maps of a cohort in verified, memory-mapped ``.npy`` chunks.

    Build with :meth:`build`; read one chunk at a time with :meth:`chunk` (verified against its
    recorded SHA-256 the first time this object reads it) or :meth:`iter_chunks`.
    """

    INDEX = "maps.json"

    def __init__(self, entry: str | os.PathLike[str]) -> None:
        self.entry = Path(entry)
        path = self.entry / self.INDEX
        if not path.is_file():
            raise FileNotFoundError(f"no feature-map cache at {self.entry} (missing {self.INDEX}); "
                                    "build it with FeatureMapCache.build")
        self.index: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if not self.index.get("complete"):
            raise FeatureError(describe(path, "incomplete feature-map cache",
                                        "run FeatureMapCache.build again (it resumes)"))
        self._verified: set[int] = set()

    @property
    def n(self) -> int:
        """Number of records."""
        return int(self.index["n"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one record's maps."""
        return tuple(self.index["shape"])  # type: ignore[return-value]

    @property
    def ids(self) -> np.ndarray:
        """``record_id`` of every row, in manifest order."""
        return np.asarray(self.index["ids"], dtype=str)

    @property
    def n_chunks(self) -> int:
        return len(self.index["chunks"])

    def chunk_rows(self, k: int) -> range:
        """Row numbers held by chunk ``k``."""
        c = self.index["chunks"][k]
        return range(int(c["start"]), int(c["start"]) + int(c["count"]))

    def chunk(self, k: int) -> np.ndarray:
        """Chunk ``k`` as a read-only float16 memory map ``(count, C, H, W)``.

        Raises
        ------
        fusion_utils.errors.FeatureError
            The file is missing, was changed after it was written (SHA-256 mismatch) or has the
            wrong shape or dtype.
        """
        c = self.index["chunks"][k]
        path = self.entry / c["file"]
        if k not in self._verified:
            if not path.is_file():
                raise FeatureError(describe(path, "feature-map chunk missing",
                                            "run FeatureMapCache.build again"))
            if file_sha256(path) != c["sha256"]:
                raise FeatureError(describe(path, "feature-map chunk changed or damaged (SHA-256 "
                                                  "differs from maps.json)",
                                            "run FeatureMapCache.build again (it recomputes it)"))
            self._verified.add(k)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FeatureError(describe(path, f"unreadable feature-map chunk ({exc})")) from exc
        if arr.dtype != MAPS_DTYPE or arr.shape != (int(c["count"]), *self.shape):
            raise FeatureError(describe(path, f"feature-map chunk has {arr.dtype} {arr.shape}, "
                                              f"expected float16 {(c['count'], *self.shape)}"))
        return arr

    def iter_chunks(self, order: Sequence[int] | None = None
                    ) -> Iterator[tuple[range, np.ndarray]]:
        """``(rows, maps)`` of every chunk, in ``order`` (default: stored order)."""
        for k in (range(self.n_chunks) if order is None else order):
            yield self.chunk_rows(int(k)), self.chunk(int(k))

    def verify(self) -> None:
        """Check every chunk's hash now (raises :class:`FeatureError` on the first bad one)."""
        for k in range(self.n_chunks):
            self.chunk(k)

    @classmethod
    def from_array(cls, entry: str | os.PathLike[str], ids: Sequence[str], maps: np.ndarray,
                   key: dict[str, Any] | None = None, chunk_size: int = 256) -> FeatureMapCache:
        """A cache holding ``maps`` ``(n, C, H, W)`` (stored as float16), e.g. for tests."""
        entry = Path(entry)
        chunks = [_write_chunk(entry, k, s, maps[s:s + chunk_size])
                  for k, s in enumerate(range(0, len(maps), int(chunk_size)))]
        atomic_write_json(entry / cls.INDEX, {
            "key": key or {"maps": "from_array"}, "n": len(maps), "ids": [str(i) for i in ids],
            "chunk_size": int(chunk_size), "shape": list(maps.shape[1:]), "chunks": chunks,
            "complete": True})
        return cls(entry)

    @classmethod
    def build(cls, manifest: pd.DataFrame, backbone: str = "efficientnet_lite0",
              weights: Any = "imagenet", *, cache_root: str | os.PathLike[str] | None = None,
              batch_size: int = 32, chunk_size: int = 256, progress: bool = False,
              montage_params: Any | None = None) -> FeatureMapCache:
        """Compute (or find) the maps of every manifest row; resumable, verified.

        Chunks already written and matching their recorded hash are kept; a damaged one is
        recomputed with a warning naming it.
        """
        from torch.utils.data import DataLoader, Subset

        from fusion_utils.features.backbones import backbone_spec, fold_batchnorm, get_backbone
        from fusion_utils.features.datasets import (
            ManifestImageDataset,
            image_source_info,
            montage_params_for,
        )
        from fusion_utils.features.extraction import _dataset_name
        from fusion_utils.paths import cache_dir

        if len(manifest) == 0:
            raise ValueError("the manifest has no rows: nothing to extract")
        dataset = _dataset_name(manifest)
        spec = backbone_spec(backbone)
        montage = (montage_params_for(spec.input_size, montage_params,
                                      manifest.attrs.get("sampling_rate"))
                   if dataset == "ptbxl" else None)
        key = feature_map_cache_key(manifest, backbone, weights,
                                    image_source=image_source_info(dataset, montage))
        root = Path(cache_root) if cache_root is not None else cache_dir("feature_maps")
        entry = root / f"{backbone}-{stable_hash(key, length=16)}"
        index_path = entry / cls.INDEX
        n = len(manifest)
        ids = manifest["record_id"].astype(str).tolist()
        index: dict[str, Any] = {"key": key, "n": n, "ids": ids, "chunk_size": int(chunk_size),
                                 "shape": None, "chunks": [], "complete": False}
        if index_path.is_file():
            old = json.loads(index_path.read_text(encoding="utf-8"))
            if old.get("key") == key and old.get("chunk_size") == int(chunk_size):
                index = old
                if index.get("complete"):
                    cache = cls(entry)
                    try:
                        cache.verify()
                        return cache
                    except FeatureError as exc:
                        warnings.warn(f"{exc}: recomputing it", stacklevel=2)
                        index["complete"] = False
        good: dict[int, dict[str, Any]] = {}
        for c in index["chunks"]:
            path = entry / c["file"]
            if path.is_file() and file_sha256(path) == c["sha256"]:
                good[int(c["start"]) // int(chunk_size)] = c
            else:
                warnings.warn(f"{path}: feature-map chunk missing or damaged; recomputing it",
                              stacklevel=2)
        n_chunks = math.ceil(n / int(chunk_size))
        todo = [k for k in range(n_chunks) if k not in good]
        if todo:
            if montage is not None:
                from fusion_utils.scalograms.cache import ScalogramCache

                ScalogramCache(params=montage).build(manifest["path"].tolist(), progress=progress)
            bb = get_backbone(backbone, weights=weights)
            ds = ManifestImageDataset.for_backbone(
                manifest, bb, augment=None, seed=0,
                classes=sorted(set(manifest["label"].astype(str))), montage_params=montage)
            model = fold_batchnorm(bb.features)
            store: list[torch.Tensor] = []
            hook = _pool_input_hook(model, store)
            entry.mkdir(parents=True, exist_ok=True)
            try:
                for k in todo:
                    rows = list(range(k * chunk_size, min(n, (k + 1) * chunk_size)))
                    loader = DataLoader(Subset(ds, rows), batch_size=int(batch_size),
                                        shuffle=False, num_workers=0)
                    parts = []
                    with torch.inference_mode():
                        for x, _, _ in loader:
                            store.clear()
                            model(x)
                            parts.append(store[-1].to(torch.float16).numpy())
                    maps = np.concatenate(parts, axis=0)
                    good[k] = _write_chunk(entry, k, k * chunk_size, maps)
                    index["shape"] = list(maps.shape[1:])
                    index["chunks"] = [good[j] for j in sorted(good)]
                    atomic_write_json(index_path, index)
                    if progress:
                        print(f"feature maps: {min(n, (k + 1) * chunk_size)}/{n}", flush=True)
            finally:
                hook.remove()
        if index["shape"] is None:
            index["shape"] = list(np.load(entry / good[0]["file"], mmap_mode="r").shape[1:])
        index["chunks"] = [good[j] for j in sorted(good)]
        index["complete"] = True
        atomic_write_json(index_path, index)
        return cls(entry)


# --------------------------------------------------------------------------- training

def _channel_stats(cache: FeatureMapCache, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the maps of ``rows`` (float64 sums)."""
    C = cache.shape[0]
    s, ss, count = np.zeros(C), np.zeros(C), 0
    keep = np.zeros(cache.n, bool)
    keep[rows] = True
    for rng_rows, maps in cache.iter_chunks():
        sel = keep[rng_rows.start:rng_rows.stop]
        if not sel.any():
            continue
        x = np.asarray(maps[sel], dtype=np.float64)
        s += x.sum(axis=(0, 2, 3))
        ss += np.square(x).sum(axis=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean ** 2, 0.0))
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def _batches(cache: FeatureMapCache, keep: np.ndarray, batch_size: int, seed: int, epoch: int,
             mean: torch.Tensor, std: torch.Tensor) -> Iterator[torch.Tensor]:
    """Standardised float32 mini-batches of the ``keep`` rows; order from ``(seed, epoch)``."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    for k in rng.permutation(cache.n_chunks):
        rows = cache.chunk_rows(int(k))
        local = np.flatnonzero(keep[rows.start:rows.stop])
        if len(local) == 0:
            continue
        maps = cache.chunk(int(k))
        local = rng.permutation(local)
        for b in range(0, len(local), batch_size):
            idx = np.sort(local[b:b + batch_size])
            x = torch.from_numpy(np.asarray(maps[idx], dtype=np.float32))
            yield (x - mean) / std


@dataclasses.dataclass
class TrainedAutoEncoder:
    """A trained auto-encoder with its standardisation and history."""

    model: ConvAutoEncoder
    mean: np.ndarray
    std: np.ndarray
    config: AEConfig
    history: list[dict[str, float]]
    resumed_from: int | None
    seconds: float


def train_autoencoder(cache: FeatureMapCache, train_rows: np.ndarray,
                      config: AEConfig | None = None, *,
                      checkpoint_dir: str | os.PathLike[str] | None = None,
                      stop_after: int | None = None, progress: bool = False
                      ) -> TrainedAutoEncoder:
    """Train the auto-encoder without labels on the maps of ``train_rows``.

    Parameters
    ----------
    cache : FeatureMapCache
        The frozen backbone's maps.
    train_rows : array of int
        Cache rows to train on (the ``train`` split).
    config : AEConfig
    checkpoint_dir : path-like, optional
        Folder of ``autoencoder.pt``, written atomically after every epoch; an existing
        checkpoint of the same maps, rows and settings is resumed.
    stop_after : int, optional
        Stop after this epoch (an interruption, for tests and time-boxed runs).
    progress : bool
        Print one line per epoch.
    """
    cfg = config or AEConfig()
    rows = np.asarray(train_rows, dtype=int)
    if len(rows) == 0:
        raise ValueError("no training rows: the auto-encoder needs the train split's maps")
    keep = np.zeros(cache.n, bool)
    keep[rows] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        model = ConvAutoEncoder(cache.shape[0], cfg.code_channels, cfg.kernel_size, cfg.pool)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run_key = {"maps": cache.index["key"], "rows": stable_hash(rows.tolist()),
               "config": cfg.training_key()}
    ck = Path(checkpoint_dir) / "autoencoder.pt" if checkpoint_dir is not None else None
    start, history, resumed = 0, [], None
    mean = std = None
    if ck is not None and ck.is_file():
        state = torch.load(ck, map_location="cpu", weights_only=False)
        if state.get("run_key") == run_key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, history = int(state["epoch"]), list(state["history"])
            mean, std = state["mean"], state["std"]
            resumed = start
    if mean is None:
        mean, std = _channel_stats(cache, rows)
    tm = torch.from_numpy(mean)[None, :, None, None]
    ts = torch.from_numpy(std)[None, :, None, None]
    t0 = time.perf_counter()
    last = cfg.epochs if stop_after is None else min(cfg.epochs, int(stop_after))
    for epoch in range(start, last):
        model.train()
        total, count = 0.0, 0
        for x in _batches(cache, keep, cfg.batch_size, cfg.seed, epoch, tm, ts):
            loss = torch.mean((model(x) - x) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            count += len(x)
        history.append({"epoch": epoch + 1, "loss": total / count})
        if progress:
            print(f"auto-encoder epoch {epoch + 1}/{cfg.epochs}: loss {total / count:.4f}",
                  flush=True)
        if ck is not None:
            with atomic_path(ck) as tmp:
                torch.save({"run_key": run_key, "model": model.state_dict(),
                            "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "history": history, "mean": mean, "std": std,
                            "config": dataclasses.asdict(cfg)}, tmp)
    model.eval()
    return TrainedAutoEncoder(model, mean, std, cfg, history, resumed, time.perf_counter() - t0)


def encode(trained: TrainedAutoEncoder, cache: FeatureMapCache,
           batch_size: int = 128) -> np.ndarray:
    """F(X) of every cache row, ``(n, code_channels)`` float32, streamed chunk by chunk."""
    tm = torch.from_numpy(trained.mean)[None, :, None, None]
    ts = torch.from_numpy(trained.std)[None, :, None, None]
    out = np.zeros((cache.n, trained.config.code_channels), np.float32)
    with torch.inference_mode():
        for rows, maps in cache.iter_chunks():
            for b in range(0, len(rows), batch_size):
                x = torch.from_numpy(np.asarray(maps[b:b + batch_size], dtype=np.float32))
                out[rows.start + b:rows.start + b + len(x)] = (
                    trained.model.pooled_code((x - tm) / ts).numpy())
    return out


def autoencoder_features(manifest: pd.DataFrame, backbone: str = "efficientnet_lite0",
                         config: AEConfig | None = None, *,
                         cache_root: str | os.PathLike[str] | None = None,
                         progress: bool = False) -> tuple[Any, TrainedAutoEncoder]:
    """Maps (cached) -> auto-encoder trained on the train split (resumable) -> FeatureSet.

    Returns ``(FeatureSet of the pooled codes, trained auto-encoder)``; the FeatureSet's ``info``
    records the backbone, config, loss history, cache folder and seconds.
    """
    keep_freed_memory()  # large blocks: no mmap/munmap per batch
    from fusion_utils.features.extraction import FeatureSet
    from fusion_utils.paths import cache_dir

    cfg = config or AEConfig()
    t0 = time.perf_counter()
    cache = FeatureMapCache.build(manifest, backbone, cache_root=cache_root, progress=progress)
    maps_seconds = time.perf_counter() - t0
    split = manifest["split"].astype(str).to_numpy()
    rows = np.flatnonzero(split == "train")
    ck_root = Path(cache_root).parent / "checkpoints" if cache_root else cache_dir("checkpoints")
    ck_dir = ck_root / f"autoencoder-{cache.entry.name}-{stable_hash(cfg.training_key(), 12)}"
    trained = train_autoencoder(cache, rows, cfg, checkpoint_dir=ck_dir, progress=progress)
    X = encode(trained, cache)
    info = {"dataset": str(manifest["dataset"].iloc[0]), "backbone": backbone,
            "mode": "ae", "weights": "imagenet", "autoencoder": dataclasses.asdict(cfg),
            "history": trained.history, "maps_cache": str(cache.entry),
            "maps_shape": list(cache.shape), "maps_seconds": round(maps_seconds, 2),
            "train_seconds": round(trained.seconds, 2), "resumed_from": trained.resumed_from,
            "n_train": len(rows), "checkpoint_dir": str(ck_dir)}
    fs = FeatureSet(ids=manifest["record_id"].astype(str).to_numpy(),
                    labels=manifest["label"].astype(str).to_numpy(), split=split, X=X,
                    feature_names=FeatureSet.names(X.shape[1], "ae"), info=info)
    return fs, trained


# --------------------------------------------------------------------------- comparison

def _aligned(fs: Any, ids: np.ndarray) -> Any:
    from fusion_utils.features.extraction import FeatureSet

    pos = {r: i for i, r in enumerate(np.asarray(fs.ids).astype(str))}
    missing = [r for r in ids if r not in pos]
    if missing:
        raise ValueError(f"{len(missing)} record(s) lack features, e.g. {missing[:3]}")
    take = np.array([pos[r] for r in ids])
    return FeatureSet(fs.ids[take], fs.labels[take], fs.split[take], fs.X[take],
                      fs.feature_names, dict(fs.info))


def compare_features(sets: dict[str, Any], manifest: pd.DataFrame, *, n_bootstrap: int = 1000,
                     seed: int = 0, classifier_params: dict[str, Any] | None = None
                     ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """BN vs AE vs FT features, image-only and fused, with paired bootstrap CIs on the test split.

    Parameters
    ----------
    sets : dict
        ``{"bn": FeatureSet, "ae": FeatureSet, "ft": FeatureSet}`` (``"ft"`` optional); rows are
        aligned on the records all of them hold.
    manifest : DataFrame
        The cohort manifest (metadata, class order).

    Returns
    -------
    (metrics, info)
        ``metrics``: ``metric, model, family, metadata, estimate, ci_low, ci_high, n_bootstrap``
        with models ``bn, ae, ft, bn+meta, ...`` and differences ``"ae - bn"``, ``"ft - ae"``,
        ``"ft - bn"`` (and ``+meta``); ``info``: sizes and classes.
    """
    from fusion_utils.evaluation.significance import bootstrap_macro_ci
    from fusion_utils.fusion.train import manifest_classes, train_image_and_fused

    names = [k for k in ("bn", "ae", "ft") if k in sets and sets[k] is not None]
    if "bn" not in names or "ae" not in names:
        raise ValueError("compare_features needs at least the 'bn' and 'ae' feature sets")
    common = [r for r in np.asarray(sets["ae"].ids).astype(str)
              if all(r in set(np.asarray(sets[k].ids).astype(str)) for k in names)]
    ids = np.array(common)
    aligned = {k: _aligned(sets[k], ids) for k in names}
    ref = aligned["ae"]
    for k in names:
        if not (np.array_equal(aligned[k].split, ref.split)
                and np.array_equal(aligned[k].labels, ref.labels)):
            raise ValueError(f"feature set {k!r} disagrees with 'ae' on splits or labels")
    classes = manifest_classes(manifest, ref.labels)
    test = ref.split == "test"
    probas, fits = {}, {}
    for k in names:
        res = train_image_and_fused(aligned[k], manifest, classifier_params=classifier_params)
        pred = res["predictions"]
        for model, suffix in (("image", ""), ("fused", "+meta")):
            p = pred[pred["model"] == model][[f"prob.{c}" for c in classes]].to_numpy()
            probas[k + suffix] = p[test]
            fits[k + suffix] = res["fit"][model]["n_features"]
    diffs = [("bn", "ae")] + ([("ae", "ft"), ("bn", "ft")] if "ft" in names else [])
    diffs += [(a + "+meta", b + "+meta") for a, b in diffs]
    ci = bootstrap_macro_ci(ref.labels[test], probas, classes, n_bootstrap=n_bootstrap,
                            seed=seed, differences=diffs)
    ci.insert(2, "family", ci["model"].map(lambda m: MODELS.get(m, ("difference", ""))[0]))
    ci.insert(3, "metadata", ci["model"].map(lambda m: MODELS.get(m, ("", ""))[1]))
    info = {"classes": list(classes), "n_records": len(ids), "n_train": int((ref.split ==
            "train").sum()), "n_test": int(test.sum()), "models": list(probas),
            "n_features": fits, "n_bootstrap": int(n_bootstrap)}
    return ci, info


def summary_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = ("auroc", "sensitivity"),
                  digits: int = 3) -> pd.DataFrame:
    """One row per model: ``estimate [ci_low, ci_high]`` (balanced accuracy = sensitivity)."""
    from fusion_utils.fusion.meta_embedding import summary_table as _table

    return _table(metrics, metrics_shown, digits)


def _verdict(rows: pd.DataFrame, key: str) -> str | None:
    if key not in rows.index:
        return None
    r = rows.loc[key]
    return ("above" if r["ci_low"] > 0 else "below" if r["ci_high"] < 0 else "within noise of")


def answer(metrics: pd.DataFrame, metric: str = "auroc") -> str:
    """A plain answer: do auto-encoder features atop the frozen network close the gap to FT?

    Per setting (image-only, fused): AE vs BN and, where FT is present, FT vs AE from the paired
    95% intervals of the macro ``metric``, and the share of the BN-to-FT gap that AE covers.
    """
    label = {"auroc": "macro AUROC", "sensitivity": "balanced accuracy"}.get(metric, metric)
    rows = metrics[metrics["metric"] == metric].set_index("model")
    out = []
    for suffix, setting in (("", "image only"), ("+meta", "with metadata")):
        ae_bn = f"ae{suffix} - bn{suffix}"
        if ae_bn not in rows.index:
            continue
        d = rows.loc[ae_bn]
        text = (f"{setting}: AE is {_verdict(rows, ae_bn)} BN ({label} {d['estimate']:+.3f}, "
                f"95% CI [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}])")
        ft_ae = f"ft{suffix} - ae{suffix}"
        if ft_ae in rows.index:
            g = rows.loc[ft_ae]
            gap = rows.loc[f"ft{suffix} - bn{suffix}", "estimate"]
            closed = (f"; AE covers {d['estimate'] / gap:.0%} of the BN-to-FT gap of {gap:+.3f}"
                      if gap > 0 else f"; FT does not beat BN here ({gap:+.3f})")
            status = ("the gap is not closed" if g["ci_low"] > 0 else
                      "AE is not distinguishable from FT" if g["ci_high"] >= 0 else
                      "AE beats FT")
            text += (f"; FT - AE {g['estimate']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]: "
                     f"{status}{closed}")
        out.append(text)
    if not out:
        raise ValueError("metrics hold no 'ae - bn' difference")
    return "; ".join(out) + "."


# --------------------------------------------------------------------------- real data

def results_folder() -> Path:
    """``results/real/autoencoder`` under the project root."""
    from fusion_utils.experiments.real_edition import results_dir

    return results_dir() / "autoencoder"


def committed_autoencoder(dataset: str, folder: str | os.PathLike[str] | None = None
                          ) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The committed real table of ``dataset`` and its provenance entry, or None."""
    base = Path(folder) if folder else results_folder()
    path = base / f"{dataset}.parquet"
    if not path.is_file():
        return None
    prov_path = base / "PROVENANCE.json"
    prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
    return pd.read_parquet(path), prov.get(dataset, {})


def run_real(dataset: str, *, backbone: str = "efficientnet_lite0",
             manifest_path: str | None = None, out_dir: str | os.PathLike[str] | None = None,
             config: AEConfig | None = None, n_bootstrap: int = 1000, command: str = "") -> Path:
    """The comparison on the real cohort; writes ``<dataset>.parquet`` and ``PROVENANCE.json``.

    BN features: ``runs/real/<dataset>-<backbone>-bn-noaug/features.npz``; FT features, when
    that run exists, ``runs/real/<dataset>-<backbone>-ft-noaug/features.npz``.
    """
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.experiments.real_edition import (
        data_checksums,
        machine_description,
        real_manifest_path,
    )
    from fusion_utils.paths import check_dataset, project_root
    from fusion_utils.run_folder import RunFolder, git_commit

    dataset = check_dataset(dataset)
    cfg = config or AEConfig()
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    man_path = Path(manifest_path) if manifest_path else real_manifest_path(dataset)
    manifest = load_manifest(man_path)
    runs = project_root() / "runs" / "real"
    sets: dict[str, Any] = {}
    sources = {}
    for mode in ("bn", "ft"):
        folder = runs / f"{dataset}-{backbone}-{mode}-noaug"
        if (folder / "features.npz").is_file():
            sets[mode] = RunFolder(folder).read_features()
            sources[mode] = {"run": str(folder.relative_to(project_root())),
                             "sha256": file_sha256(folder / "features.npz")}
    if "bn" not in sets:
        raise FileNotFoundError(f"no BN features at {runs}/{dataset}-{backbone}-bn-noaug; run the "
                                "real grid first (python -m fusion_utils.experiments real)")
    sets["ae"], trained = autoencoder_features(manifest, backbone, cfg, progress=True)
    metrics, info = compare_features(sets, manifest, n_bootstrap=n_bootstrap, seed=cfg.seed)
    out = Path(out_dir) if out_dir else results_folder()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{dataset}.parquet") as tmp:
        metrics.to_parquet(tmp, index=False)
    prov_path = out / "PROVENANCE.json"
    provenance = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
    ae_info = sets["ae"].info
    provenance[dataset] = {
        "command": command or f"python -m fusion_utils.features.autoencoder real --dataset "
                              f"{dataset}",
        "git_commit": git_commit(), "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - t0, 1),
        "maps_seconds": ae_info["maps_seconds"], "train_seconds": ae_info["train_seconds"],
        "machine": machine_description(), "torch_threads": torch.get_num_threads(),
        "data_checksums_sha256": data_checksums(),
        "manifest": str(man_path), "manifest_sha256": file_sha256(man_path),
        "backbone": backbone, "features": sources, "autoencoder": dataclasses.asdict(cfg),
        "history": trained.history, "maps_shape": ae_info["maps_shape"],
        "answer": answer(metrics), **info,
    }
    atomic_write_json(prov_path, json.loads(json.dumps(provenance, default=str)))
    return out / f"{dataset}.parquet"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusion_utils.features.autoencoder real --dataset ptbxl``."""
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.features.autoencoder",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    real = sub.add_parser("real", help="BN vs AE (vs FT) on the real cohort -> "
                                       "results/real/autoencoder/<dataset>.parquet")
    real.add_argument("--dataset", required=True, choices=["ptbxl", "ham10000"])
    real.add_argument("--backbone", default="efficientnet_lite0")
    real.add_argument("--manifest", default=None,
                      help="default: cache/manifests/<dataset>_real.parquet")
    real.add_argument("--out-dir", default=None, help="default: results/real/autoencoder")
    real.add_argument("--epochs", type=int, default=AEConfig.epochs)
    real.add_argument("--code-channels", type=int, default=AEConfig.code_channels)
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--n-bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    command = "python -m fusion_utils.features.autoencoder " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    cfg = AEConfig(code_channels=args.code_channels, epochs=args.epochs, seed=args.seed)
    path = run_real(args.dataset, backbone=args.backbone, manifest_path=args.manifest,
                    out_dir=args.out_dir, config=cfg, n_bootstrap=args.n_bootstrap,
                    command=command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
