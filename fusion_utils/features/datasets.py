"""A torch Dataset over a manifest: HAM10000 photographs or PTB-XL scalogram montages.

Each item is the network input for one manifest row: the RGB image (HAM10000: the JPEG file in
``path``; PTB-XL: the 12-lead scalogram montage from
:class:`fusion_utils.scalograms.cache.ScalogramCache`, drawn directly at the backbone's input
size, see :func:`montage_params_for`), resized bilinearly to the backbone's square input size
(the paper: "all images are resized to the required dimensions using bi-linear interpolation";
antialiased, as MATLAB's ``imresize`` is when shrinking), optionally augmented
(:mod:`fusion_utils.features.augment`, seeded per record and epoch), then normalised with the
backbone's mean and standard deviation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from fusion_utils.errors import FeatureError, describe
from fusion_utils.features.augment import AugmentParams, PaperAugmentation, sample_seed

__all__ = [
    "PREPROCESSING_VERSION",
    "ManifestImageDataset",
    "default_montage_params",
    "image_source_info",
    "load_rgb",
    "montage_params_for",
    "resize_image",
]

PREPROCESSING_VERSION = 2
"""Bumped whenever loading, resizing, augmentation or normalisation changes (cache keys)."""

_REQUIRED = ("record_id", "dataset", "label", "path", "split")


def default_montage_params(sampling_rate: float | None = None, image_size: int = 224) -> Any:
    """The paper's montage (:class:`fusion_utils.scalograms.montage.MontageParams`) for records
    sampled at ``sampling_rate`` Hz (default 100, PTB-XL's ``records100``), ``image_size`` pixels
    square."""
    from fusion_utils.scalograms.montage import MontageParams

    return MontageParams(fs=float(sampling_rate or 100), image_size=int(image_size))


def montage_params_for(input_size: int, montage_params: Any | None = None,
                       sampling_rate: float | None = None) -> Any:
    """The montage parameters a network of ``input_size`` pixels receives.

    ``montage_params`` (a :class:`~fusion_utils.scalograms.montage.MontageParams` or its dict;
    default the paper's at ``sampling_rate``) with ``image_size`` set to ``input_size``: every
    network gets a montage drawn at its own size (299 for Inception-ResNet-v2, 227 for AlexNet),
    never a 224 montage resized, so the tile edges and the per-tile bilinear resize of the
    scalograms happen at the network's resolution. All other fields (layout, intensity scaling,
    colormap, wavelet) are kept, so chapter 02's choices reach every network.
    """
    import dataclasses

    from fusion_utils.scalograms.montage import MontageParams

    if montage_params is None:
        return default_montage_params(sampling_rate, image_size=input_size)
    if isinstance(montage_params, dict):
        montage_params = MontageParams.from_dict(montage_params)
    if not isinstance(montage_params, MontageParams):
        raise TypeError("montage_params must be a MontageParams, a dict of its fields or None, "
                        f"got {type(montage_params).__name__}")
    if montage_params.image_size == int(input_size):
        return montage_params
    return dataclasses.replace(montage_params, image_size=int(input_size))


def image_source_info(dataset: str, montage_params: Any | None = None) -> dict[str, Any]:
    """What, besides the files, determines the images of ``dataset`` (part of cache keys)."""
    if dataset != "ptbxl":
        return {"source": "image-file"}
    params = montage_params if montage_params is not None else default_montage_params()
    return {"source": "scalogram-montage", "montage_key": params.key(),
            "montage": params.to_dict()}


def _to_chw(image: Any) -> torch.Tensor:
    """uint8 or float array/tensor, HWC or CHW, gray or RGB(A) -> CHW tensor with 3 channels."""
    if hasattr(image, "mode") and hasattr(image, "convert"):  # PIL image
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        image = np.ascontiguousarray(image)
        t = torch.from_numpy(image if image.flags.writeable else image.copy())
    else:
        t = image
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"cannot turn {type(image).__name__} into an image tensor")
    if t.ndim == 2:
        t = t[None]
    elif t.ndim == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
        t = t.permute(2, 0, 1)
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image of shape (H, W, 3) or (3, H, W), got {tuple(t.shape)}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 4:
        t = t[:3]
    return t.contiguous()


def load_rgb(row: Any, scalogram_cache: Any | None = None) -> torch.Tensor:
    """The full-resolution RGB image of one manifest row as a ``(3, H, W)`` tensor.

    HAM10000 rows decode ``row.path`` (uint8). PTB-XL rows return the cached scalogram montage of
    the WFDB record at ``row.path`` (dtype as the cache returns it).

    Raises
    ------
    FileNotFoundError
        The image file is missing.
    fusion_utils.errors.FeatureError
        The image cannot be decoded (truncated or corrupt JPEG/PNG); names the file and record.
    """
    dataset = str(row["dataset"])
    path = str(row["path"])
    if dataset == "ptbxl":
        if scalogram_cache is None:
            raise ValueError("PTB-XL rows need a ScalogramCache to build their montages")
        return _to_chw(scalogram_cache.get(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image of record {row['record_id']!r} not found: {path} "
                                "(rebuild the manifest with notebook 01 if the data moved)")
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise FeatureError(describe(
            path, f"unreadable image of record {row['record_id']!r} (truncated, corrupt or not "
                  f"an image: {type(exc).__name__}: {exc})",
            "replace the file (re-download it) or drop the record from the manifest")) from exc
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of a ``(3, H, W)`` image to ``size`` x ``size``, as float
    in [0, 1] (uint8 input is divided by 255; float input is taken as already in [0, 1]). An
    image that already has the size is only converted (PTB-XL montages drawn at the size)."""
    if tuple(image.shape[-2:]) == (int(size), int(size)):
        out = image
    else:
        out = TF.resize(image, [size, size], interpolation=InterpolationMode.BILINEAR,
                        antialias=True)
    if out.dtype == torch.uint8:
        return out.to(torch.float32).div_(255.0)
    return out.to(torch.float32).clamp_(0.0, 1.0)


class ManifestImageDataset(Dataset):
    """Network inputs for the rows of a manifest.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest (``ARCHITECTURE.md``): columns ``record_id``, ``dataset``, ``label``, ``path``,
        ``split``.
    input_size : int
        Square side length after the bilinear resize.
    mean, std : sequence of float
        Per-channel normalisation applied to RGB values in [0, 1].
    augment : AugmentParams or None
        The paper's augmentation, applied to the splits ``augment.apply_to`` names.
    seed : int
        Run seed; each record's augmentation is seeded by ``(seed, record_id, epoch)``.
    classes : sequence of str, optional
        Class order for the integer targets; default ``manifest.attrs["classes"]`` or the sorted
        labels.
    montage_params : MontageParams, optional
        How PTB-XL montages are made; default the paper's, at the manifest's
        ``attrs["sampling_rate"]``. Their ``image_size`` is replaced by ``input_size``
        (:func:`montage_params_for`): montages are drawn at the network's size.
    scalogram_cache : object, optional
        Anything with ``get(path) -> image`` for PTB-XL rows; default
        ``ScalogramCache(params=montage_params)``, created lazily in each worker process.

    Notes
    -----
    ``dataset[i]`` returns ``(image, target, i)``: a float32 ``(3, input_size, input_size)``
    tensor, the class index of the row's label and the row position.
    """

    def __init__(self, manifest: pd.DataFrame, *, input_size: int = 224,
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225),
                 augment: AugmentParams | None = None, seed: int = 0,
                 classes: Sequence[str] | None = None, montage_params: Any | None = None,
                 scalogram_cache: Any | None = None) -> None:
        missing = [c for c in _REQUIRED if c not in manifest.columns]
        if missing:
            raise ValueError(f"manifest lacks column(s) {', '.join(missing)}; build it with "
                             "fusion_utils.data.manifest.build_manifest")
        if int(input_size) < 8:
            raise ValueError(f"input_size must be >= 8 pixels, got {input_size!r}")
        self.records = manifest[list(_REQUIRED)].reset_index(drop=True).astype(str)
        if classes is None:
            classes = manifest.attrs.get("classes") or sorted(self.records["label"].unique())
        self.classes = tuple(str(c) for c in classes)
        index = {c: k for k, c in enumerate(self.classes)}
        unknown = sorted(set(self.records["label"]) - set(index))
        if unknown:
            raise ValueError(f"label(s) {unknown} not among classes {list(self.classes)}")
        self.targets = self.records["label"].map(index).to_numpy(dtype=np.int64)
        self.input_size = int(input_size)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
        self.augment = augment
        self._augmenter = PaperAugmentation(augment) if augment is not None else None
        self.seed = int(seed)
        self.epoch = 0
        self._scalogram_cache = scalogram_cache
        self._montage_params = montage_params
        self._sampling_rate = manifest.attrs.get("sampling_rate")

    @property
    def montage_params(self) -> Any:
        """Montage parameters of PTB-XL rows, drawn at ``input_size``
        (:func:`montage_params_for`)."""
        if not hasattr(self._montage_params, "image_size") or (
                self._montage_params.image_size != self.input_size):
            self._montage_params = montage_params_for(self.input_size, self._montage_params,
                                                      self._sampling_rate)
        return self._montage_params

    @classmethod
    def for_backbone(cls, manifest: pd.DataFrame, backbone: Any,
                     **kwargs: Any) -> ManifestImageDataset:
        """Dataset with ``backbone``'s input size and normalisation."""
        return cls(manifest, input_size=backbone.input_size, mean=backbone.mean,
                   std=backbone.std, **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch that seeds the augmentation (fine-tuning draws anew each epoch)."""
        self.epoch = int(epoch)

    @property
    def scalogram_cache(self) -> Any:
        """The montage source for PTB-XL rows (created on first use)."""
        if self._scalogram_cache is None:
            from fusion_utils.scalograms.cache import ScalogramCache

            self._scalogram_cache = ScalogramCache(params=self.montage_params)
        return self._scalogram_cache

    def is_augmented(self, i: int) -> bool:
        """Whether row ``i`` is augmented (depends on its split and ``augment.apply_to``)."""
        return self.augment is not None and self.augment.applies_to(self.records.at[i, "split"])

    def image(self, i: int, augmented: bool | None = None) -> torch.Tensor:
        """Row ``i`` resized (and augmented when ``augmented``, default as in training) but not
        normalised: float in [0, 1], for display."""
        row = self.records.iloc[i]
        needs_cache = row["dataset"] == "ptbxl"
        raw = load_rgb(row, self.scalogram_cache if needs_cache else None)
        x = resize_image(raw, self.input_size)
        if augmented is None:
            augmented = self.is_augmented(i)
        if augmented:
            aug = self._augmenter or PaperAugmentation()
            g = torch.Generator().manual_seed(sample_seed(self.seed, row["record_id"], self.epoch))
            x = aug.augment(x, generator=g)
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = self.image(int(i))
        return (x - self.mean) / self.std, int(self.targets[i]), int(i)
