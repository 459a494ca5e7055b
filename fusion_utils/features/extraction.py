"""Image features F(X): bottleneck (BN) and fine-tuned (FT) extraction with a resumable cache.

:func:`extract_features` runs a backbone (:mod:`fusion_utils.features.backbones`) over every row
of a manifest and returns a :class:`FeatureSet`: the input of the network's final classification
layer, one row per image. ``mode="bn"`` uses the ImageNet weights as they are; ``mode="ft"`` first
fine-tunes the network on the manifest's training split (:mod:`fusion_utils.features.finetune`,
validated on its ``val`` split) and then extracts features in exactly the same way.

The cache
---------
Results live under ``paths.cache_dir("features")/<backbone>-<mode>-<key>/``, where ``key``
hashes everything the numbers depend on: the manifest rows (ids, labels, paths, splits), how the
images are made (for PTB-XL: the montage parameters), the backbone and its weights, the mode and
the fine-tuning options, the augmentation and (when it matters) the seed, the precision,
:data:`fusion_utils.features.datasets.PREPROCESSING_VERSION` and the size and modification time
of every input file (:func:`input_fingerprint`: the images, or the WFDB ``.hea``/``.dat`` files
of PTB-XL records), so a replaced image gives another key and is recomputed. Extraction writes one
``chunk_<k>.npz`` per ``chunk_size`` images, atomically; an interrupted run keeps its finished
chunks and computes only the missing ones next time. When all chunks are there they are joined into
``features.npz`` (a :class:`FeatureSet`) and removed, so a re-run is a single file read. A chunk
or ``features.npz`` that cannot be read (truncated, overwritten) is recomputed with a warning
naming it; :meth:`FeatureSet.load` raises :class:`~fusion_utils.errors.FeatureError` for it.
Fine-tuned networks are cached the same way under ``paths.cache_dir("checkpoints")``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.errors import FeatureError, describe
from fusion_utils.features.augment import AugmentParams
from fusion_utils.features.backbones import (
    SELF_SUPERVISED_WEIGHTS,
    Backbone,
    backbone_spec,
    fold_batchnorm,
    get_backbone,
)
from fusion_utils.features.datasets import (
    PREPROCESSING_VERSION,
    ManifestImageDataset,
    image_source_info,
    montage_params_for,
)
from fusion_utils.io import atomic_write_json, file_sha256, save_npz_atomic, stable_hash
from fusion_utils.paths import cache_dir

__all__ = [
    "FEATURES_VERSION",
    "FeatureSet",
    "extract_features",
    "feature_cache_key",
    "input_fingerprint",
    "manifest_hash",
    "precision_context",
    "run_features",
    "subsample_manifest",
]

FEATURES_VERSION = 2
# What np.load raises on a damaged .npz (a truncated zip, a bad member, a wrong header).
_NPZ_ERRORS = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile)
MODES = ("bn", "ft")
PRECISIONS = ("float32", "bf16", "bf16-autocast")


@dataclasses.dataclass
class FeatureSet:
    """Features of a cohort: one row per record.

    Attributes
    ----------
    ids, labels, split : numpy.ndarray of str, shape (n,)
        ``record_id``, class name and ``train``/``val``/``test`` of each row.
    X : numpy.ndarray of float32, shape (n, d)
        The features.
    feature_names : numpy.ndarray of str, shape (d,)
        ``img.0000`` ...
    info : dict
        JSON-serialisable description: backbone, weights, mode, augment, seed, timings, ...
    """

    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    X: np.ndarray
    feature_names: np.ndarray
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=str)
        self.labels = np.asarray(self.labels, dtype=str)
        self.split = np.asarray(self.split, dtype=str)
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.feature_names = np.asarray(self.feature_names, dtype=str)
        n = len(self.ids)
        if self.X.ndim != 2 or self.X.shape[0] != n:
            raise ValueError(f"X must have shape (n={n}, d), got {self.X.shape}")
        if len(self.labels) != n or len(self.split) != n:
            raise ValueError(f"ids, labels and split must have the same length, got {n}, "
                             f"{len(self.labels)}, {len(self.split)}")
        if len(self.feature_names) != self.X.shape[1]:
            raise ValueError(f"{len(self.feature_names)} feature names for {self.X.shape[1]} "
                             "columns")

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def names(d: int, prefix: str = "img") -> np.ndarray:
        """``img.0000``, ``img.0001``, ... (``d`` names)."""
        width = max(4, len(str(d - 1)))
        return np.array([f"{prefix}.{k:0{width}d}" for k in range(d)])

    def subset(self, mask: np.ndarray | Sequence[bool] | str) -> FeatureSet:
        """Rows selected by a boolean mask or by a split name (``"train"``)."""
        if isinstance(mask, str):
            mask = self.split == mask
        mask = np.asarray(mask)
        return FeatureSet(self.ids[mask], self.labels[mask], self.split[mask], self.X[mask],
                          self.feature_names, dict(self.info))

    def to_frame(self) -> pd.DataFrame:
        """``record_id``, ``label``, ``split`` and one column per feature."""
        frame = pd.DataFrame(self.X, columns=self.feature_names)
        frame.insert(0, "split", self.split)
        frame.insert(0, "label", self.labels)
        frame.insert(0, "record_id", self.ids)
        return frame

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one ``.npz`` atomically (``info`` as JSON text); return the path."""
        return save_npz_atomic(path, ids=self.ids, labels=self.labels, split=self.split, X=self.X,
                               feature_names=self.feature_names,
                               info=np.array(json.dumps(self.info, sort_keys=True, default=str)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSet:
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        fusion_utils.errors.FeatureError
            The file is damaged (truncated, overwritten) or not a FeatureSet file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature file not found: {path} (write it with notebook 03 "
                                    "or FeatureSet.save)")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"ids", "labels", "split", "X", "feature_names", "info"} - set(z.files)
                if missing:
                    raise FeatureError(describe(path, f"not a FeatureSet file (missing "
                                                      f"{sorted(missing)})"))
                return cls(z["ids"], z["labels"], z["split"], z["X"], z["feature_names"],
                           json.loads(str(z["info"])))
        except FeatureError:
            raise
        except _NPZ_ERRORS as exc:
            raise FeatureError(describe(
                path, f"damaged feature file ({type(exc).__name__}: {exc})",
                "delete it and extract again (notebook 03 or extract_features)")) from exc


def subsample_manifest(manifest: pd.DataFrame, max_images: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_images`` rows, drawn in proportion from every (split, label) cell.

    Every non-empty cell keeps at least one row while ``max_images`` allows it, so each split
    still holds each of its classes; rows keep their manifest order and ``attrs``. ``0`` (or a
    number at least the manifest's length) returns the manifest unchanged.
    """
    n = len(manifest)
    if max_images is None or int(max_images) <= 0 or int(max_images) >= n:
        return manifest
    budget = int(max_images)
    cells = manifest.groupby(["split", "label"], sort=True).indices
    sizes = {k: len(v) for k, v in cells.items()}
    quota = {k: min(sizes[k], max(1, round(budget * sizes[k] / n))) for k in cells}
    while sum(quota.values()) > budget and any(q > 1 for q in quota.values()):
        largest = max((k for k in quota if quota[k] > 1), key=lambda k: quota[k])
        quota[largest] -= 1
    while sum(quota.values()) < budget:
        room = [k for k in quota if quota[k] < sizes[k]]
        if not room:
            break
        quota[max(room, key=lambda k: sizes[k] - quota[k])] += 1
    rng = np.random.default_rng(int(seed))
    keep = np.concatenate([rng.choice(idx, size=quota[k], replace=False)
                           for k, idx in cells.items() if quota[k] > 0])
    out = manifest.iloc[np.sort(keep)[:budget]].copy()
    out.attrs = dict(manifest.attrs)
    return out


# --------------------------------------------------------------------------- keys

def manifest_hash(manifest: pd.DataFrame) -> str:
    """Hash of the manifest rows that determine images, labels and splits (order included)."""
    cols = ["record_id", "dataset", "label", "path", "split"]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {', '.join(missing)}")
    rows = manifest[cols].astype(str).to_numpy().tolist()
    return stable_hash(rows, length=24)


def _input_files(dataset: str, path: str) -> tuple[str, ...]:
    if dataset == "ptbxl":
        base = path[: -len(".hea")] if path.endswith((".hea", ".dat")) else path
        return (base + ".hea", base + ".dat")
    return (path,)


def input_fingerprint(manifest: pd.DataFrame) -> str:
    """Hash of the size and modification time (ns) of every input file of the manifest.

    HAM10000 rows: the image at ``path``; PTB-XL rows: the record's ``.hea`` and ``.dat``. A
    missing file counts as ``None`` (extraction then fails with a clear error). Size and time,
    not a content hash: hashing 10,000 photographs would cost more than a cache hit saves;
    tools that rewrite a file keep neither unchanged.
    """
    stamps: list[Any] = []
    for dataset, path in zip(manifest["dataset"].astype(str), manifest["path"].astype(str),
                             strict=True):
        for f in _input_files(dataset, path):
            try:
                st = os.stat(f)
                stamps.append((f, st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append((f, None, None))
    return stable_hash(stamps, length=24)


def _augment_params(augment: bool | str | AugmentParams | None) -> AugmentParams | None:
    if augment is None or augment is False:
        return None
    if augment is True:
        return AugmentParams()
    if isinstance(augment, AugmentParams):
        return augment
    if isinstance(augment, str):
        return AugmentParams(apply_to=augment)
    raise TypeError(f"augment must be a bool, 'train+test', 'train' or AugmentParams, got "
                    f"{augment!r}")


def _weights_key(weights: str | os.PathLike[str] | None) -> str:
    if weights is None or (isinstance(weights, str) and weights.lower() in {"", "none", "random"}):
        return "random"
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return "imagenet"
    if isinstance(weights, str) and weights.lower() in SELF_SUPERVISED_WEIGHTS:
        return weights.lower()  # "dino", "swav", ...: self-supervised resnet50 weights
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}; pass 'imagenet', None or a path")
    return f"file:{file_sha256(path)[:16]}"


def _dataset_name(manifest: pd.DataFrame) -> str:
    names = sorted(set(manifest["dataset"].astype(str)))
    if len(names) != 1:
        raise ValueError(f"manifest mixes datasets {names}; extract each cohort on its own")
    return names[0]


def feature_cache_key(manifest: pd.DataFrame, backbone: str, weights: Any, mode: str,
                      augment: AugmentParams | None, seed: int, precision: str,
                      ft_options: dict[str, Any] | None = None,
                      image_source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a feature set depends on, as a dict (hashed by :func:`extract_features`).

    The seed is part of the key only when it changes the numbers: with augmentation, random
    weights or fine-tuning.
    """
    dataset = _dataset_name(manifest)
    weights_key = _weights_key(weights)
    seeded = augment is not None or weights_key == "random" or mode == "ft"
    return {
        "features_version": FEATURES_VERSION,
        "preprocessing_version": PREPROCESSING_VERSION,
        "manifest": manifest_hash(manifest),
        "inputs": input_fingerprint(manifest),
        "images": image_source if image_source is not None else image_source_info(
            dataset, montage_params_for(backbone_spec(backbone).input_size, None,
                                        manifest.attrs.get("sampling_rate"))
            if dataset == "ptbxl" else None),
        "backbone": backbone,
        "weights": weights_key,
        "mode": mode,
        "ft": ft_options if mode == "ft" else None,
        "augment": augment.as_dict() if augment is not None else None,
        "seed": int(seed) if seeded else None,
        "precision": precision,
    }


# --------------------------------------------------------------------------- extraction

def _build(backbone: str, weights: Any, seed: int) -> Backbone:
    if _weights_key(weights) == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return get_backbone(backbone, weights=None)
    return get_backbone(backbone, weights=weights)


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str = "float32"):
    """Numerics of a forward pass.

    ``"float32"``: plain float32. ``"bf16"``: on the CPU, float32 tensors with bfloat16
    arithmetic inside oneDNN convolutions and matrix products (``torch.backends.mkldnn``
    ``fp32_precision = "bf16"``, accumulation in float32); between layers activations stay float32,
    which keeps efficientnet_lite0's features within cosine similarity 0.999 of float32 (see
    ``tests/test_features.py``); on CUDA, bfloat16 autocast. ``"bf16-autocast"``: bfloat16
    autocast everywhere (activations stored in bfloat16; faster, but efficientnet_lite0's
    features drift to a cosine similarity of about 0.995).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        yield
        return
    if precision == "bf16-autocast" or device.type != "cpu":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
        return
    mk = torch.backends.mkldnn
    saved = (mk.conv.fp32_precision, mk.matmul.fp32_precision)
    mk.conv.fp32_precision = "bf16"
    mk.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        mk.conv.fp32_precision, mk.matmul.fp32_precision = saved


def run_features(features: torch.nn.Module, loader: DataLoader, device: torch.device,
                 precision: str = "float32", progress: Any | None = None) -> np.ndarray:
    """Apply ``features`` to every batch of ``loader`` (items ``(image, target, index)``);
    return a float32 array in loader order."""
    out = []
    with torch.inference_mode(), precision_context(device, precision):
        for x, _, _ in loader:
            x = x.to(device, memory_format=torch.channels_last, non_blocking=True)
            out.append(features(x).float().cpu().numpy())
            if progress is not None:
                progress.update(len(x))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)


def extract_features(
    manifest: pd.DataFrame,
    backbone: str = "efficientnet_lite0",
    weights: str | os.PathLike[str] | None = "imagenet",
    mode: str = "bn",
    augment: bool | str | AugmentParams | None = False,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "float32",
    cache_root: str | os.PathLike[str] | None = None,
    ft_options: dict[str, Any] | Any | None = None,
    progress: bool = True,
    num_workers: int | None = None,
    chunk_size: int = 256,
    use_cache: bool = True,
    montage_params: Any | None = None,
) -> FeatureSet:
    """Extract F(X) for every row of ``manifest`` (cached, resumable).

    Parameters
    ----------
    manifest : pandas.DataFrame
        One cohort's manifest (``ARCHITECTURE.md``); every split is extracted, in row order.
    backbone : str
        A name from :func:`fusion_utils.features.backbones.list_backbones`.
    weights : {"imagenet", None} or path
        See :func:`fusion_utils.features.backbones.get_backbone`.
    mode : {"bn", "ft"}
        Bottleneck features of the pretrained network, or features after fine-tuning on the
        ``train`` split (validated on ``val``).
    augment : bool, {"train+test", "train"} or AugmentParams
        The paper's augmentation: ``True`` applies it to every split (the paper), ``"train"``
        only to the training split. Each record gets one augmented view, seeded by
        ``(seed, record_id)``.
    seed : int
        Seed of the augmentation, of random weights and of fine-tuning.
    batch_size : int
        Images per forward pass during extraction.
    device : {"auto", "cpu", "cuda"}
        Where the network runs.
    precision : {"float32", "bf16", "bf16-autocast"}
        Arithmetic of the forward pass (see :func:`precision_context`); features are returned
        as float32 in every case.
    cache_root : path-like, optional
        Feature cache folder (default ``paths.cache_dir("features")``); fine-tuning checkpoints go
        to ``<cache_root>/../checkpoints`` when given, else ``paths.cache_dir("checkpoints")``.
    ft_options : dict or FinetuneOptions, optional
        Fine-tuning options (``mode="ft"``): ``epochs``, ``batch_size`` (default: the paper's per
        dataset), ``lr``, ``momentum``, ``weight_decay``, ``select``.
    progress : bool
        Show a progress bar and fine-tuning epochs.
    num_workers : int, optional
        DataLoader workers (default: 0 on 2 cores).
    chunk_size : int
        Images per cache chunk (the unit of resumption).
    use_cache : bool
        ``False`` recomputes everything and writes nothing.
    montage_params : MontageParams or dict, optional
        PTB-XL only: how the montages are drawn (chapter 02's parameters: layout, intensity
        scaling, colormap, wavelet); default the paper's. Their ``image_size`` is always the
        backbone's input size (:func:`fusion_utils.features.datasets.montage_params_for`), so a
        299-pixel network receives montages drawn at 299 pixels.

    Returns
    -------
    FeatureSet
        ``info`` holds the configuration, ``cache_key``, ``cache_dir``, ``cache_hit``,
        ``seconds`` (extraction wall time of the run that computed the features; fine-tuning time
        in ``ft_seconds``) and ``images_per_second``.

    Examples
    --------
    >>> from fusion_utils.data.manifest import load_manifest  # doctest: +SKIP
    >>> fs = extract_features(load_manifest("cache/manifests/ham10000.parquet"))  # doctest: +SKIP
    >>> fs.X.shape  # doctest: +SKIP
    (400, 1280)
    """
    keep_freed_memory()  # large blocks: no mmap/munmap per batch
    from fusion_utils.features.finetune import (
        FinetuneOptions,
        default_num_workers,
        resolve_device,
    )

    spec = backbone_spec(backbone)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: choose 'bn' (bottleneck) or 'ft' (fine-tuned)")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if int(batch_size) < 1 or int(chunk_size) < 1:
        raise ValueError("batch_size and chunk_size must be >= 1")
    if len(manifest) == 0:
        raise ValueError("the manifest has no rows: nothing to extract")
    aug = _augment_params(augment)
    dataset = _dataset_name(manifest)
    dev = resolve_device(device)
    workers = default_num_workers() if num_workers is None else int(num_workers)
    ft_opts = FinetuneOptions.from_any(ft_options).resolved(dataset) if mode == "ft" else None
    ft_dict = dataclasses.asdict(ft_opts) if ft_opts is not None else None
    montage = (montage_params_for(spec.input_size, montage_params,
                                  manifest.attrs.get("sampling_rate"))
               if dataset == "ptbxl" else None)

    key = feature_cache_key(manifest, backbone, weights, mode, aug, seed, precision, ft_dict,
                            image_source=image_source_info(dataset, montage))
    digest = stable_hash(key, length=16)
    root = Path(cache_root) if cache_root is not None else cache_dir("features")
    entry = root / f"{backbone}-{mode}-{digest}"
    final = entry / "features.npz"
    if use_cache and final.is_file():
        try:
            fs = FeatureSet.load(final)
        except FeatureError as exc:
            warnings.warn(f"{exc}: recomputing it", stacklevel=2)
            final.unlink(missing_ok=True)
        else:
            if fs.info.get("cache_key") == key:
                fs.info.update(cache_hit=True, cache_dir=str(entry))
                return fs

    info: dict[str, Any] = {
        "dataset": dataset, "backbone": backbone, "mode": mode, "weights_requested":
        str(weights) if weights is not None else None, "augment": key["augment"],
        "seed": int(seed), "precision": precision, "device": str(dev),
        "batch_size": int(batch_size),
        "input_size": spec.input_size, "feature_dim": spec.feature_dim,
        "montage": montage.to_dict() if montage is not None else None,
        "feature_layer": spec.description, "cache_key": key, "cache_digest": digest,
    }
    if montage is not None:
        # One batched pass builds every missing montage (the dataset would otherwise draw them one
        # record per item, about 15x slower); records already cached are only verified.
        from fusion_utils.scalograms.cache import ScalogramCache

        ScalogramCache(params=montage).build(manifest["path"].tolist(), progress=progress)
    torch.backends.mkldnn.enabled = True
    ft_seconds = 0.0
    if mode == "ft":
        from fusion_utils.features.finetune import finetune, history_to_records

        ck_root = ((root.parent / "checkpoints") if cache_root is not None
                   else cache_dir("checkpoints"))
        ck_key = {k: v for k, v in key.items() if k not in ("precision", "mode")}
        ck_dir = ck_root / f"{backbone}-{stable_hash(ck_key, length=16)}"
        bb = _build(backbone, weights, seed)
        train_ds = ManifestImageDataset.for_backbone(
            manifest[manifest["split"] == "train"], bb, augment=aug, seed=seed,
            classes=manifest.attrs.get("classes") or sorted(manifest["label"].unique()),
            montage_params=montage)
        val_ds = ManifestImageDataset.for_backbone(
            manifest[manifest["split"] == "val"], bb, augment=aug, seed=seed,
            classes=train_ds.classes, montage_params=montage)
        t0 = time.perf_counter()
        result = finetune(bb, train_ds, val_ds, options=ft_opts, seed=seed, device=dev,
                          checkpoint_dir=ck_dir if use_cache else None, num_workers=workers,
                          progress=progress)
        ft_seconds = time.perf_counter() - t0
        bb = result.backbone
        info.update(ft_history=history_to_records(result.history), ft_best_epoch=result.best_epoch,
                    ft_options=ft_dict, ft_checkpoint_dir=str(ck_dir) if use_cache else None,
                    ft_resumed_from=result.resumed_from, classes=list(train_ds.classes))
    else:
        bb = _build(backbone, weights, seed)
    info["weights"] = bb.weights_tag
    info["ft_seconds"] = ft_seconds

    ds = ManifestImageDataset.for_backbone(manifest, bb, augment=aug, seed=seed,
                                           classes=sorted(set(manifest["label"].astype(str))),
                                           montage_params=montage)
    # BatchNorm folded into the convolutions: same features (to float rounding), ~25% faster.
    model = fold_batchnorm(bb.features).to(dev).to(memory_format=torch.channels_last)
    n = len(ds)
    n_chunks = math.ceil(n / int(chunk_size))
    if use_cache:
        entry.mkdir(parents=True, exist_ok=True)
        atomic_write_json(entry / "key.json", key)
    chunks: dict[int, np.ndarray] = {}
    for c in range(n_chunks):
        path = entry / f"chunk_{c:05d}.npz"
        if use_cache and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if (int(z["start"]) == c * chunk_size
                            and len(z["X"]) == min(chunk_size, n - c * chunk_size)):
                        chunks[c] = z["X"]
            except _NPZ_ERRORS as exc:
                warnings.warn(f"{path}: damaged feature chunk ({type(exc).__name__}: {exc}); "
                              "recomputing it", stacklevel=2)
    todo = [c for c in range(n_chunks) if c not in chunks]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        done = n - sum(min(chunk_size, n - c * chunk_size) for c in todo)
        bar = tqdm(total=n, initial=done, desc=f"{backbone} {mode}", unit="img", mininterval=1.0,
                   disable=None)  # None: quiet when not a terminal
    t0 = time.perf_counter()
    computed = 0
    for c in todo:
        idx = list(range(c * chunk_size, min(n, (c + 1) * chunk_size)))
        loader = DataLoader(Subset(ds, idx), batch_size=int(batch_size), shuffle=False,
                            num_workers=workers, pin_memory=dev.type == "cuda")
        X = run_features(model, loader, dev, precision, bar)
        chunks[c] = X
        computed += len(idx)
        if use_cache:
            save_npz_atomic(entry / f"chunk_{c:05d}.npz", X=X, start=np.array(c * chunk_size))
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    X = np.concatenate([chunks[c] for c in range(n_chunks)], axis=0)
    info.update(seconds=seconds, images_computed=computed,
                images_per_second=(computed / seconds) if computed and seconds > 0 else None,
                n=n, cache_dir=str(entry) if use_cache else None)
    fs = FeatureSet(ids=manifest["record_id"].astype(str).to_numpy(),
                    labels=manifest["label"].astype(str).to_numpy(),
                    split=manifest["split"].astype(str).to_numpy(), X=X,
                    feature_names=FeatureSet.names(X.shape[1]), info=info)
    if use_cache:
        fs.save(final)
        for c in range(n_chunks):
            (entry / f"chunk_{c:05d}.npz").unlink(missing_ok=True)
    fs.info["cache_hit"] = False
    return fs


def clear_cache(entry: str | os.PathLike[str]) -> None:
    """Delete one cache entry folder (as named in ``FeatureSet.info["cache_dir"]``)."""
    path = Path(entry)
    if path.is_dir():
        shutil.rmtree(path)
