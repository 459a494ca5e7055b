"""Fine-tuning (FT): replace the classification layer and retrain the whole network.

The paper (section III.A): stochastic gradient descent with momentum 0.9, initial learning rate
3e-4, training images shuffled every epoch, mini-batches of 128 (HAM10000) or 64 (PTB-XL), in
MATLAB R2021a. Everything else is MATLAB's ``trainingOptions('sgdm')`` default, which
:class:`FinetuneOptions` copies and ``book/methods.md`` tabulates with the MathWorks sources:
an L2 penalty of 1e-4 (``weight_decay``), a constant learning rate, no gradient clipping, and
30 epochs (``MaxEpochs``; the book's default is 2 to keep the build short: the ``epochs``
parameter).

The network returned is the **last epoch's**, as R2021a's ``trainNetwork`` returns it: the
``OutputNetwork`` option (``"last-iteration"`` or ``"best-validation-loss"``) only appeared in
R2021b. R2021b's best-validation choice stays available as
``FinetuneOptions(output_network="best-validation-loss")``; it is off by default. The
validation split is scored after every epoch either way (the learning curves of chapter 03), but
with the default it does not change the network.

On CUDA the forward passes run under bfloat16 autocast (as extraction does there); weights,
optimiser state and loss stay float32. The CPU path is float32 throughout.

Every epoch writes ``last.pt`` (model, optimiser, history: enough to resume) and, when the
validation loss improves, ``best.pt`` (model only), both atomically; an interrupted run resumes
from ``last.pt`` and a finished one returns without training.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.features.backbones import Backbone
from fusion_utils.io import atomic_path

__all__ = [
    "OUTPUT_NETWORKS",
    "PAPER_BATCH_SIZE",
    "FinetuneOptions",
    "FinetuneResult",
    "default_num_workers",
    "finetune",
    "resolve_device",
]

PAPER_BATCH_SIZE: dict[str, int] = {"ham10000": 128, "ptbxl": 64}
"""Mini-batch sizes of the paper per dataset."""

SELECT = ("val_loss", "val_accuracy")
OUTPUT_NETWORKS = ("last-iteration", "best-validation-loss")
"""MATLAB's names for ``trainingOptions(..., 'OutputNetwork', ...)`` (R2021b and later)."""


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    """Hyper-parameters of fine-tuning (defaults: the paper's and MATLAB R2021a's, 2 epochs).

    Attributes
    ----------
    epochs : int
        Passes over the training split (MATLAB's ``MaxEpochs``, default 30 there; 2 here so the
        book builds in minutes: pass 30 for MATLAB's).
    batch_size : int or None
        Mini-batch size; ``None`` means the paper's for the dataset (:data:`PAPER_BATCH_SIZE`).
    lr, momentum, weight_decay : float
        SGD settings (the paper: 3e-4 and 0.9; weight decay as MATLAB's default L2 of 1e-4).
    output_network : {"last-iteration", "best-validation-loss"}
        Which network is returned: the last epoch's (R2021a, the paper's release, which has no
        choice) or the epoch with the best validation score (R2021b's
        ``OutputNetwork='best-validation-loss'``).
    select : {"val_loss", "val_accuracy"}
        With ``output_network="best-validation-loss"``: which validation score picks the epoch
        (MATLAB uses the loss).
    """

    epochs: int = 2
    batch_size: int | None = None
    lr: float = 3e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    output_network: str = "last-iteration"
    select: str = "val_loss"

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs!r}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size!r}")
        if self.select not in SELECT:
            raise ValueError(f"select={self.select!r}: choose one of {', '.join(SELECT)}")
        if self.output_network not in OUTPUT_NETWORKS:
            raise ValueError(f"output_network={self.output_network!r}: choose one of "
                             f"{', '.join(OUTPUT_NETWORKS)} (MATLAB's names)")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @classmethod
    def from_any(cls, value: FinetuneOptions | dict[str, Any] | None) -> FinetuneOptions:
        """Accept options, a dict of their fields, or ``None`` (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ValueError(f"unknown fine-tuning option(s) {unknown}; valid: "
                                 f"{[f.name for f in dataclasses.fields(cls)]}")
            return cls(**value)
        raise TypeError(f"ft_options must be FinetuneOptions, a dict or None, got {value!r}")

    def resolved(self, dataset: str) -> FinetuneOptions:
        """These options with ``batch_size`` filled in from the paper for ``dataset``."""
        if self.batch_size is not None:
            return self
        return dataclasses.replace(self, batch_size=PAPER_BATCH_SIZE.get(dataset, 64))


@dataclasses.dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes
    ----------
    backbone : Backbone
        The fine-tuned network with the selected epoch's weights, in eval mode, on the CPU.
    history : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``, ``seconds``.
    best_epoch : int
        The epoch whose weights are returned (1-based): the last one with
        ``output_network="last-iteration"``, the best validated one otherwise.
    checkpoint_dir : pathlib.Path or None
        Where ``last.pt`` and ``best.pt`` are.
    resumed_from : int
        Epochs found in a checkpoint at the start (0: trained from the start).
    """

    backbone: Backbone
    history: pd.DataFrame
    best_epoch: int
    checkpoint_dir: Path | None
    resumed_from: int = 0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:1"`` as given."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'cpu' or 'auto'")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"device={device!r}: use 'auto', 'cpu' or 'cuda'")
    return torch.device(name)


def default_num_workers() -> int:
    """DataLoader workers: none on machines with 2 cores or fewer (decoding in the main process
    costs less than competing with the network's threads), otherwise up to 4."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 2)


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def _autocast(device: torch.device) -> Any:
    """bfloat16 autocast on CUDA (as extraction does there), nothing on the CPU.

    bfloat16 keeps float32's exponent range, so the loss needs no scaling (no ``GradScaler``);
    the weights, the optimiser state and the loss stay float32. The CPU path is unchanged: it
    is the reference the tests check.
    """
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                          enabled=device.type == "cuda")


def _evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
              memory_format: torch.memory_format) -> tuple[float, float]:
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with torch.inference_mode():
        for x, y, _ in loader:
            x = x.to(device, memory_format=memory_format)
            y = y.to(device)
            with _autocast(device):
                logits = model(x).float()
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    return (loss_sum / total, correct / total) if total else (math.nan, math.nan)


def _is_better(score: tuple[float, float], best: tuple[float, float] | None, select: str) -> bool:
    """``score``/``best`` are (val_loss, val_accuracy)."""
    if best is None:
        return True
    if select == "val_accuracy":
        return (score[1], -score[0]) > (best[1], -best[0])
    return score[0] < best[0]


def finetune(
    backbone: Backbone,
    train: Dataset,
    val: Dataset | None = None,
    *,
    options: FinetuneOptions | dict[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
    keep_all: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``backbone`` on ``train`` with the paper's SGD set-up.

    Parameters
    ----------
    backbone : Backbone
        Pretrained network; its classification layer is replaced by one with
        ``len(train.classes)`` outputs (modified in place).
    train, val : Dataset
        Items ``(image, target, index)`` as
        :class:`fusion_utils.features.datasets.ManifestImageDataset` yields; ``train.classes``
        names the classes. ``val`` may be ``None`` (then the last epoch is returned whatever
        ``output_network`` says). A ``set_epoch(epoch)`` method, when present, is called every
        epoch so the augmentation changes from epoch to epoch.
    options : FinetuneOptions or dict, optional
        ``batch_size`` must be set (see :meth:`FinetuneOptions.resolved`); default 64 otherwise.
    seed : int
        Seeds the new classification layer and each epoch's shuffling.
    device : {"auto", "cpu", "cuda"}
        Where to train.
    checkpoint_dir : path-like, optional
        Folder for ``last.pt``/``best.pt``/``history.json`` (resumed when present).
    num_workers : int, optional
        DataLoader workers (default :func:`default_num_workers`).
    keep_all : bool
        Also keep ``epoch_<k>.pt`` (model only) for every epoch.
    progress : bool
        Print one line per epoch.

    Returns
    -------
    FinetuneResult
    """
    keep_freed_memory()  # large blocks: no mmap/munmap per batch
    opts = FinetuneOptions.from_any(options)
    batch_size = int(opts.batch_size or 64)
    classes = list(getattr(train, "classes", []))
    if not classes:
        raise ValueError("train dataset must expose .classes (the class names in target order)")
    if len(train) == 0:
        raise ValueError("the training split is empty: nothing to fine-tune on")
    dev = resolve_device(device)
    workers = default_num_workers() if num_workers is None else int(num_workers)
    memory_format = torch.channels_last
    keep_best = opts.output_network == "best-validation-loss" and val is not None and len(val) > 0

    backbone.replace_head(len(classes), seed=seed)
    model = backbone.model().to(dev).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=opts.momentum,
                                weight_decay=opts.weight_decay)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best: tuple[float, float] | None = None
    best_epoch = 0
    start = 0
    if ckdir is not None and (ckdir / "last.pt").is_file():
        state = torch.load(ckdir / "last.pt", map_location=dev, weights_only=False)
        saved = dict(state.get("options") or {})
        wanted = dataclasses.asdict(opts)
        saved.pop("epochs", None)
        wanted.pop("epochs", None)
        if state.get("classes") != classes or saved != wanted or int(state["epoch"]) > opts.epochs:
            raise ValueError(f"{ckdir / 'last.pt'}: checkpoint of another configuration "
                             f"(classes {state.get('classes')}, options {state.get('options')}, "
                             f"{state['epoch']} epochs done); use another checkpoint_dir or "
                             "delete this one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = list(state["history"])
        best_epoch = int(state["best_epoch"])
        best = tuple(state["best_score"]) if state["best_score"] is not None else None
        start = int(state["epoch"])
    resumed_from = start

    val_loader = None
    if val is not None and len(val) > 0:
        val_loader = DataLoader(val, batch_size=batch_size, shuffle=False, num_workers=workers)
    drop_last = len(train) % batch_size == 1  # a batch of one breaks BatchNorm in training
    for epoch in range(start + 1, opts.epochs + 1):
        t0 = time.perf_counter()
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        epoch_seed = int(seed) * 100_003 + epoch
        gen = torch.Generator().manual_seed(epoch_seed)
        loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen,
                            num_workers=workers, drop_last=drop_last)
        model.train()
        loss_sum, seen = 0.0, 0
        # Dropout / drop-connect draw from the global RNG: seed it per epoch (and restore it
        # afterwards) so that a resumed run repeats an uninterrupted one.
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(epoch_seed)
            # Batches of the epoch with elapsed time and an estimate; quiet when not a terminal.
            for x, y, _ in tqdm(loader, desc=f"epoch {epoch}/{opts.epochs}", unit="batch",
                                leave=False, disable=None if progress else True):
                x = x.to(dev, memory_format=memory_format)
                y = y.to(dev)
                optimizer.zero_grad(set_to_none=True)
                with _autocast(dev):
                    logits = model(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(y)
                seen += len(y)
        train_loss = loss_sum / max(seen, 1)
        if val_loader is not None:
            val_loss, val_acc = _evaluate(model, val_loader, dev, memory_format)
        else:
            val_loss, val_acc = math.nan, math.nan
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
               "val_accuracy": val_acc, "seconds": time.perf_counter() - t0}
        history.append(row)
        score = (val_loss, val_acc)
        improved = val_loader is None or _is_better(score, best, opts.select)
        if improved:
            best = None if val_loader is None else score
            if keep_best:
                best_epoch = epoch
                if ckdir is None and epoch < opts.epochs:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if not keep_best:
            best_epoch = epoch
        if ckdir is not None:
            weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            if improved:
                _save({"model": weights, "epoch": epoch, "classes": classes}, ckdir / "best.pt")
            if keep_all:
                _save({"model": weights, "epoch": epoch, "classes": classes},
                      ckdir / f"epoch_{epoch:03d}.pt")
            _save({"model": weights, "optimizer": optimizer.state_dict(), "epoch": epoch,
                   "history": history, "best_epoch": best_epoch,
                   "best_score": None if best is None else list(best), "classes": classes,
                   "options": dataclasses.asdict(opts), "seed": int(seed)}, ckdir / "last.pt")
        if progress:
            print(f"epoch {epoch}/{opts.epochs}: train loss {train_loss:.4f}, val loss "
                  f"{val_loss:.4f}, val accuracy {val_acc:.3f} ({row['seconds']:.1f} s)"
                  + (" *" if improved else ""), flush=True)

    if best_epoch != opts.epochs:  # the returned epoch is not the weights in memory
        if ckdir is not None:
            best_state = torch.load(ckdir / "best.pt", map_location=dev, weights_only=True)["model"]
        if best_state is not None:
            model.load_state_dict(best_state)
    model.eval().to("cpu")
    backbone.features, backbone.head = model.features, model.head
    backbone.features.eval()
    backbone.head.eval()
    frame = pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss", "val_accuracy",
                                           "seconds"])
    return FinetuneResult(backbone=backbone, history=frame, best_epoch=int(best_epoch),
                          checkpoint_dir=ckdir, resumed_from=resumed_from)


def history_to_records(history: pd.DataFrame) -> list[dict[str, float]]:
    """JSON-friendly rows of a history table (NaN -> None)."""
    out = []
    for row in history.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and np.isnan(v) else v)
                    for k, v in row.items()})
    return out
