"""Meta-embeddings of several backbones: best single, concatenation, and DVME.

From the cached bottleneck (BN) features of several backbones for the same records (one run
folder per backbone, each with ``features.npz``), this module compares

(a) **the best single backbone**: the paper's softmax classifier
    (:class:`~fusion_utils.fusion.softmax.SoftmaxClassifier`) on each backbone's features, the
    backbone chosen by macro AUROC on the *validation* split;
(b) **concatenation**: the same softmax classifier on all backbones' features side by side;
(c) **DVME**, the Dynamic Visual Meta-Embedding of Truong et al. (2021, arXiv 2108.10048):
    each source embedding is projected linearly to 512 numbers, self-attention runs across the
    sources (one token per backbone, :class:`torch.nn.MultiheadAttention`), the attended tokens
    are concatenated, projected to 512 and classified; trained end to end on the cached features
    (:class:`DVMEClassifier`),

each without and with the patient metadata (mapped by
:class:`~fusion_utils.fusion.metadata.MetadataEncoder`, fitted on the training split): for (a)
and (b) the metadata columns are appended to the features, as in the paper's fusion; for DVME
the metadata enter either as **one more token** (projected to 512 like a source) or
**concatenated after attention** (beside the concatenated tokens, before the 512 projection).

The seven models are evaluated on the test split with the project's nine metrics and their
stratified, paired bootstrap CIs (:func:`fusion_utils.evaluation.significance.bootstrap_macro_ci`)
and paired differences to the best single backbone; for the DVME models, the attention each
source token *receives* (the attention matrix averaged over heads and over the query tokens) is
averaged over the test records of each true class (:func:`attention_by_class`).

Choices the DVME paper leaves open, made here and stated once:

- inputs: every source's features (and the encoded metadata) are standardised with the training
  split's mean and standard deviation (constant columns divided by 1);
- attention block: one pre-norm block as in ViT (the paper: "the same as the ViT one"):
  ``z = x + Dropout(MHA(LN(x)))``, 8 heads, no MLP sub-block (the 512 projection after
  concatenation plays its part); ``residual=False`` gives the bare ``MHA(x)``;
- head: ``Linear(T * 512 [+ m], 512) -> GELU -> Dropout -> Linear(512, K)``; dropout 0.1;
- training: AdamW (learning rate 1e-4, weight decay 1e-4), mini-batches of 64 drawn by a seeded
  :class:`torch.Generator`, cross-entropy, at most 200 epochs; **early stopping** on the
  validation cross-entropy with patience 20 epochs, restoring the weights of the best
  validation epoch. With 1e-3 the ~4M weights fitted the 1,073 real PTB-XL training records
  within one epoch (best validation loss at epoch 1); 1e-4 reaches its validation minimum
  after a few epochs (a choice made on the validation split, never on the test split);
- determinism: ``torch.manual_seed(seed)`` before the weights are drawn, CPU only; the same
  seed, data and thread count give the same numbers.

The softmax baselines use the classifier settings of the book's grid (the paper's unpenalised
classifier unless ``classifier_params`` say otherwise), so the best single backbone's numbers
are those of chapter 04/05 for that run folder.

Command line (real data; results under ``results/real/meta_embedding/``)::

    python -m fusion_utils.fusion.meta_embedding real --dataset ptbxl

uses every ``runs/real/<dataset>-*-bn-noaug`` folder holding ``features.npz`` (at least two).
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = [
    "DVME",
    "MODELS",
    "DVMEClassifier",
    "DVMEConfig",
    "MetaEmbeddingResult",
    "Sources",
    "answer",
    "attention_by_class",
    "committed_meta_embedding",
    "compare_meta_embeddings",
    "load_sources",
    "main",
    "resolve_run_dirs",
    "run_real",
    "sources_from_feature_sets",
    "summary_table",
]

#: The seven models compared: name -> (family, metadata handling).
MODELS: dict[str, tuple[str, str]] = {
    "single": ("best single backbone", "none"),
    "single+meta": ("best single backbone", "appended"),
    "concat": ("concatenation", "none"),
    "concat+meta": ("concatenation", "appended"),
    "dvme": ("DVME", "none"),
    "dvme+meta-token": ("DVME", "token"),
    "dvme+meta-concat": ("DVME", "after attention"),
}

#: Paired differences reported (base, new): every combination against the best single backbone
#: of the same metadata condition.
DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("single", "concat"), ("single", "dvme"),
    ("single+meta", "concat+meta"), ("single+meta", "dvme+meta-token"),
    ("single+meta", "dvme+meta-concat"),
)

METADATA_TOKEN = "metadata"


# --------------------------------------------------------------------------------------------
# sources: several backbones' features of the same records


@dataclass
class Sources:
    """Features of several backbones for the same records, in one row order.

    Attributes
    ----------
    names : list of str
        One name per source (the backbone, or the run folder's name when two share one).
    X : list of ndarray (n, d_s) float32
    ids, labels, split : ndarray of str (n,)
    run_dirs : list of str
        Where each source was read ("" for in-memory sources).
    """

    names: list[str]
    X: list[np.ndarray]
    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    run_dirs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=str)
        self.labels = np.asarray(self.labels, dtype=str)
        self.split = np.asarray(self.split, dtype=str)
        self.X = [np.ascontiguousarray(x, dtype=np.float32) for x in self.X]
        n = len(self.ids)
        if len(self.names) != len(self.X):
            raise ValueError(f"{len(self.names)} source names for {len(self.X)} feature matrices")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"source names must be unique, got {self.names}")
        for name, x in zip(self.names, self.X, strict=True):
            if x.ndim != 2 or x.shape[0] != n:
                raise ValueError(f"source {name!r}: features of shape {x.shape} for {n} records")
        if len(self.labels) != n or len(self.split) != n:
            raise ValueError("ids, labels and split must have one entry per record")
        if not self.run_dirs:
            self.run_dirs = [""] * len(self.names)

    def __len__(self) -> int:
        return len(self.ids)

    def feature_set(self, index: int) -> Any:
        """Source ``index`` as a :class:`~fusion_utils.features.extraction.FeatureSet`."""
        from fusion_utils.features.extraction import FeatureSet

        x = self.X[index]
        return FeatureSet(self.ids, self.labels, self.split, x, FeatureSet.names(x.shape[1]),
                          {"backbone": self.names[index]})

    def concatenated(self) -> Any:
        """All sources side by side (columns ``<source>.0000`` ...) as one FeatureSet."""
        from fusion_utils.features.extraction import FeatureSet

        names = np.concatenate([FeatureSet.names(x.shape[1], prefix=n)
                                for n, x in zip(self.names, self.X, strict=True)])
        return FeatureSet(self.ids, self.labels, self.split, np.hstack(self.X), names,
                          {"backbone": "+".join(self.names)})


def resolve_run_dirs(run_dirs: str | Sequence[str | os.PathLike[str]],
                     root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Run folders holding ``features.npz``, from paths or glob patterns.

    Parameters
    ----------
    run_dirs : str or sequence
        A comma-separated string or a list; each entry a folder or a glob pattern
        (``runs/book/ptbxl-efficientnet_lite*-bn-noaug``); relative entries are taken from
        ``root`` (default: the project root).

    Returns
    -------
    list of Path
        Sorted within each pattern, duplicates dropped; folders without ``features.npz`` are
        left out.

    Raises
    ------
    FileNotFoundError
        When no entry names a folder with ``features.npz``.
    """
    from fusion_utils.paths import project_root

    base = Path(root) if root is not None else project_root()
    entries = ([e.strip() for e in run_dirs.split(",")] if isinstance(run_dirs, str)
               else [str(e) for e in run_dirs])
    found: list[Path] = []
    for entry in filter(None, entries):
        pattern = entry if os.path.isabs(entry) else str(base / entry)
        for match in sorted(glob.glob(pattern)) or [pattern]:
            path = Path(match)
            if (path / "features.npz").is_file() and path not in found:
                found.append(path)
    if not found:
        raise FileNotFoundError(f"run_dirs={run_dirs!r}: no folder with features.npz (looked "
                                f"under {base}); extract BN features first (notebook 03)")
    return found


def _source_name(info: dict[str, Any], folder: Path) -> str:
    return str(info.get("backbone") or folder.name)


def load_sources(run_dirs: str | Sequence[str | os.PathLike[str]],
                 root: str | os.PathLike[str] | None = None) -> Sources:
    """Read the features of several run folders and align them by ``record_id``.

    Every folder must hold the same records with the same labels and splits (rows may come in
    any order; they are put in the first folder's order). Two folders of one backbone (e.g.
    BN with and without augmentation) are named after their folders.

    Raises
    ------
    ValueError
        Fewer than two folders, or folders whose records, labels or splits differ (the message
        names the folders and a few records).
    """
    from fusion_utils.run_folder import RunFolder

    folders = resolve_run_dirs(run_dirs, root)
    if len(folders) < 2:
        raise ValueError(f"run_dirs={run_dirs!r}: meta-embeddings need at least two backbones' "
                         f"features, found {len(folders)} ({[str(f) for f in folders]})")
    sets = [RunFolder(f).read_features() for f in folders]
    return sources_from_feature_sets(sets, [str(f) for f in folders])


def sources_from_feature_sets(sets: Sequence[Any], origins: Sequence[str] | None = None
                              ) -> Sources:
    """:class:`Sources` from FeatureSets of the same records (rows aligned by ``record_id``).

    Sources are named after ``info["backbone"]``; when two share a backbone, after their
    ``origins`` (folder names).

    Raises
    ------
    ValueError
        Feature sets whose records, labels or splits differ (naming the origins and records).
    """
    origins = [str(o) for o in (origins or [f"source {k}" for k in range(len(sets))])]
    if len(origins) != len(sets):
        raise ValueError(f"{len(origins)} origins for {len(sets)} feature sets")
    names = [_source_name(fs.info, Path(o)) for fs, o in zip(sets, origins, strict=True)]
    if len(set(names)) < len(names):
        names = [Path(o).name for o in origins]
    first = sets[0]
    order = pd.Index(first.ids)
    if order.has_duplicates:
        raise ValueError(f"{origins[0]}: record ids are not unique")
    X = [first.X]
    for fs, origin in zip(sets[1:], origins[1:], strict=True):
        other = pd.Index(fs.ids)
        missing, extra = order.difference(other), other.difference(order)
        if len(missing) or len(extra) or other.has_duplicates:
            raise ValueError(
                f"{origin} holds other records than {origins[0]}: {len(missing)} missing "
                f"(e.g. {list(missing[:3])}), {len(extra)} extra (e.g. {list(extra[:3])}); "
                "extract every backbone from the same manifest")
        pos = other.get_indexer(order)
        for what, mine, theirs in (("labels", first.labels, fs.labels[pos]),
                                   ("splits", first.split, fs.split[pos])):
            bad = np.flatnonzero(mine != theirs)
            if len(bad):
                raise ValueError(f"{origin} and {origins[0]} disagree on the {what} of "
                                 f"{len(bad)} record(s), e.g. {list(first.ids[bad[:3]])}")
        X.append(fs.X[pos])
    return Sources(names, X, first.ids, first.labels, first.split, origins)


# --------------------------------------------------------------------------------------------
# DVME


@dataclass(frozen=True)
class DVMEConfig:
    """DVME's architecture and training settings (see the module docstring for the choices).

    Attributes
    ----------
    dim : int
        Width of each projected token and of the projection after concatenation (paper: 512).
    n_heads : int
        Attention heads (``dim`` must be divisible by it).
    dropout : float
        Dropout in attention and before the classifier.
    residual : bool
        Pre-norm residual attention block (ViT) or the bare attention output.
    lr, weight_decay : float
        AdamW's learning rate and weight decay.
    batch_size : int
        Records per step.
    max_epochs, patience : int
        Epoch budget and early-stopping patience (epochs without a lower validation loss).
    seed : int
        Seed of the weights, the dropout and the batch order.
    """

    dim: int = 512
    n_heads: int = 8
    dropout: float = 0.1
    residual: bool = True
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_heads < 1 or self.dim % self.n_heads:
            raise ValueError(f"DVMEConfig: dim={self.dim} must be a positive multiple of "
                             f"n_heads={self.n_heads}")
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError(f"DVMEConfig: max_epochs={self.max_epochs}, patience="
                             f"{self.patience}, batch_size={self.batch_size} must be >= 1")
        if not 0 <= self.dropout < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"DVMEConfig: dropout={self.dropout} must be in [0, 1), lr="
                             f"{self.lr} > 0, weight_decay={self.weight_decay} >= 0")


class DVME(nn.Module):
    """Dynamic Visual Meta-Embedding network (Truong et al. 2021).

    Parameters
    ----------
    source_dims : sequence of int
        Feature dimension of each source (one token each).
    n_classes : int
    meta_dim : int
        Number of metadata columns (0: none).
    metadata : {"none", "token", "concat"}
        How metadata enter: not at all, as one more token, or concatenated after attention.
    dim, n_heads, dropout, residual
        See :class:`DVMEConfig`.

    ``forward(xs, meta)`` returns ``(logits, attention)``; ``attention`` is ``(batch, T, T)``
    (query, key), averaged over heads, each row summing to 1.
    """

    def __init__(self, source_dims: Sequence[int], n_classes: int, *, meta_dim: int = 0,
                 metadata: str = "none", dim: int = 512, n_heads: int = 8,
                 dropout: float = 0.1, residual: bool = True) -> None:
        super().__init__()
        if metadata not in ("none", "token", "concat"):
            raise ValueError(f"metadata={metadata!r}: choose 'none', 'token' or 'concat'")
        if metadata != "none" and meta_dim < 1:
            raise ValueError(f"metadata={metadata!r} needs meta_dim >= 1, got {meta_dim}")
        self.metadata = metadata
        self.residual = residual
        self.projections = nn.ModuleList(nn.Linear(int(d), dim) for d in source_dims)
        self.meta_projection = nn.Linear(meta_dim, dim) if metadata == "token" else None
        n_tokens = len(source_dims) + (metadata == "token")
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        extra = meta_dim if metadata == "concat" else 0
        self.head = nn.Sequential(nn.Linear(n_tokens * dim + extra, dim), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, xs: Sequence[torch.Tensor], meta: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = [proj(x) for proj, x in zip(self.projections, xs, strict=True)]
        if self.meta_projection is not None:
            tokens.append(self.meta_projection(meta))
        x = torch.stack(tokens, dim=1)  # (batch, T, dim)
        h = self.norm(x) if self.residual else x
        attended, weights = self.attention(h, h, h, need_weights=True,
                                           average_attn_weights=True)
        z = x + self.dropout(attended) if self.residual else attended
        flat = z.flatten(1)
        if self.metadata == "concat":
            flat = torch.cat([flat, meta], dim=1)
        return self.head(flat), weights


def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


class DVMEClassifier:
    """Train and apply a :class:`DVME` on cached features (seeded, CPU, early stopping).

    Parameters
    ----------
    classes : sequence of str
        Class order of the outputs.
    config : DVMEConfig
    metadata : {"none", "token", "concat"}

    Attributes (after :meth:`fit`)
    ------------------------------
    model_ : DVME
        With the weights of the best validation epoch.
    history_ : DataFrame
        ``epoch`` (1-based), ``train_loss`` (mean over the epoch's batches, dropout on),
        ``val_loss`` (cross-entropy on the validation split, evaluation mode).
    best_epoch_, n_epochs_ : int
        Epoch whose weights were restored; epochs run.
    best_val_loss_ : float
    fit_time_ : float
        Seconds.
    """

    def __init__(self, classes: Sequence[str], config: DVMEConfig | None = None,
                 metadata: str = "none") -> None:
        self.classes = [str(c) for c in classes]
        self.config = config or DVMEConfig()
        self.metadata = metadata

    def _tensors(self, xs: Sequence[np.ndarray], meta: np.ndarray | None
                 ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if len(xs) != len(self.scalers_):
            raise ValueError(f"{len(xs)} sources given, the model was fitted on "
                             f"{len(self.scalers_)}")
        ts = [torch.as_tensor(((np.asarray(x, np.float64) - m) / s).astype(np.float32))
              for x, (m, s) in zip(xs, self.scalers_, strict=True)]
        tm = None
        if self.metadata != "none":
            if meta is None:
                raise ValueError(f"metadata={self.metadata!r}: pass the metadata matrix")
            m, s = self.meta_scaler_
            tm = torch.as_tensor(((np.asarray(meta, np.float64) - m) / s).astype(np.float32))
        return ts, tm

    def _codes(self, y: Sequence[str]) -> torch.Tensor:
        index = {c: k for k, c in enumerate(self.classes)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among classes {self.classes}")
        return torch.as_tensor([index[str(v)] for v in y], dtype=torch.long)

    def fit(self, xs: Sequence[np.ndarray], y: Sequence[str], xs_val: Sequence[np.ndarray],
            y_val: Sequence[str], meta: np.ndarray | None = None,
            meta_val: np.ndarray | None = None) -> DVMEClassifier:
        """Train on ``(xs, y)``; stop early on the validation loss of ``(xs_val, y_val)``.

        ``xs`` holds one ``(n, d_s)`` matrix per source; ``meta`` the encoded metadata
        ``(n, m)`` when ``metadata`` is not ``"none"``.
        """
        cfg = self.config
        t0 = time.perf_counter()
        self.scalers_ = [_standardiser(np.asarray(x, np.float64)) for x in xs]
        meta_dim = 0
        if self.metadata != "none":
            if meta is None or meta_val is None:
                raise ValueError(f"metadata={self.metadata!r}: pass meta and meta_val")
            self.meta_scaler_ = _standardiser(np.asarray(meta, np.float64))
            meta_dim = int(np.asarray(meta).shape[1])
        Xt, Mt = self._tensors(xs, meta)
        Xv, Mv = self._tensors(xs_val, meta_val)
        yt, yv = self._codes(y), self._codes(y_val)
        torch.manual_seed(cfg.seed)
        model = DVME([x.shape[1] for x in Xt], len(self.classes), meta_dim=meta_dim,
                     metadata=self.metadata, dim=cfg.dim, n_heads=cfg.n_heads,
                     dropout=cfg.dropout, residual=cfg.residual)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(cfg.seed)
        n = len(yt)
        best, best_state, best_epoch, rows, waited = np.inf, None, 0, [], 0
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            order = torch.randperm(n, generator=gen)
            losses = []
            for start in range(0, n, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                logits, _ = model([x[idx] for x in Xt], None if Mt is None else Mt[idx])
                loss = loss_fn(logits, yt[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item() * len(idx))
            model.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(model(Xv, Mv)[0], yv))
            rows.append({"epoch": epoch, "train_loss": sum(losses) / n, "val_loss": val_loss})
            if val_loss < best:
                best, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        model.load_state_dict(best_state)
        model.eval()
        self.model_ = model
        self.history_ = pd.DataFrame(rows)
        self.best_epoch_, self.n_epochs_, self.best_val_loss_ = best_epoch, len(rows), best
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _forward(self, xs: Sequence[np.ndarray], meta: np.ndarray | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(self, "model_"):
            raise RuntimeError("DVMEClassifier is not fitted: call fit first")
        X, M = self._tensors(xs, meta)
        with torch.no_grad():
            return self.model_(X, M)

    def predict_proba(self, xs: Sequence[np.ndarray], meta: np.ndarray | None = None
                      ) -> np.ndarray:
        """Class probabilities ``(n, K)`` in ``classes`` order."""
        logits, _ = self._forward(xs, meta)
        return torch.softmax(logits.double(), dim=1).numpy()

    def loss(self, xs: Sequence[np.ndarray], y: Sequence[str],
             meta: np.ndarray | None = None) -> float:
        """Mean cross-entropy of the fitted model on ``(xs, y)`` (evaluation mode)."""
        logits, _ = self._forward(xs, meta)
        return float(nn.functional.cross_entropy(logits, self._codes(y)))

    def attention_received(self, xs: Sequence[np.ndarray], meta: np.ndarray | None = None
                           ) -> np.ndarray:
        """Attention each token receives, per record: ``(n, T)``, rows summing to 1.

        The attention matrix (query x key, averaged over heads) averaged over the queries; the
        tokens are the sources in order, then the metadata token (``metadata="token"``).
        """
        _, weights = self._forward(xs, meta)
        return weights.double().mean(dim=1).numpy()


# --------------------------------------------------------------------------------------------
# the comparison


@dataclass
class MetaEmbeddingResult:
    """What :func:`compare_meta_embeddings` returns.

    Attributes
    ----------
    metrics : DataFrame
        ``model, family, metadata, metric, estimate, ci_low, ci_high, n_bootstrap`` (the nine
        macro metrics of each model, then the paired differences ``"<new> - <base>"``).
    attention : DataFrame
        ``model, class, source, attention, n_records``: mean attention received per source
        token over the test records of each true class (DVME models).
    selection : DataFrame
        Validation macro AUROC of each backbone, without and with metadata, and which was chosen.
    probas : dict
        Model -> test probabilities ``(n_test, K)``.
    fits : DataFrame
        Per model: seconds, epochs, best epoch (DVME), number of input features.
    info : dict
        ``dataset``, ``classes``, ``sources``, ``n_train``, ``n_val``, ``n_test``, settings.
    """

    metrics: pd.DataFrame
    attention: pd.DataFrame
    selection: pd.DataFrame
    probas: dict[str, np.ndarray]
    fits: pd.DataFrame
    info: dict[str, Any]
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)


def attention_by_class(received: np.ndarray, labels: Sequence[str], classes: Sequence[str],
                       tokens: Sequence[str]) -> pd.DataFrame:
    """Mean attention received per token over the records of each true class.

    Returns ``class, source, attention, n_records`` (classes without records are left out).
    """
    received = np.asarray(received, dtype=float)
    labels = np.asarray(labels).astype(str)
    if received.shape != (len(labels), len(tokens)):
        raise ValueError(f"attention of shape {received.shape} for {len(labels)} records and "
                         f"{len(tokens)} tokens")
    rows = []
    for c in classes:
        mask = labels == str(c)
        if not mask.any():
            continue
        mean = received[mask].mean(axis=0)
        rows += [{"class": str(c), "source": str(t), "attention": float(a),
                  "n_records": int(mask.sum())} for t, a in zip(tokens, mean, strict=True)]
    return pd.DataFrame(rows, columns=["class", "source", "attention", "n_records"])


def _softmax_models(features: Any, manifest: pd.DataFrame, columns: Sequence[str] | None,
                    encoding: str, classifier_params: dict[str, Any]) -> dict[str, Any]:
    from fusion_utils.fusion.train import train_image_and_fused

    return train_image_and_fused(features, manifest, metadata_columns=columns, encoding=encoding,
                                 classifier_params=classifier_params)


def _probas(result: dict[str, Any], model: str, classes: Sequence[str]) -> pd.DataFrame:
    pred = result["predictions"]
    return pred[pred["model"] == model].reset_index(drop=True)[[f"prob.{c}" for c in classes]]


def compare_meta_embeddings(sources: Sources, manifest: pd.DataFrame, *,
                            metadata_columns: Sequence[str] | None = None,
                            encoding: str = "paper",
                            classifier_params: dict[str, Any] | None = None,
                            config: DVMEConfig | None = None, n_bootstrap: int = 1000,
                            bootstrap_seed: int = 0, progress: bool = False
                            ) -> MetaEmbeddingResult:
    """Best single backbone vs concatenation vs DVME, without and with metadata.

    Parameters
    ----------
    sources : Sources
        Several backbones' features of the same records (:func:`load_sources`).
    manifest : DataFrame
        The cohort manifest (``record_id``, ``meta.*``; its dataset gives the class order).
    metadata_columns : sequence of str, optional
        Metadata columns (default: all ``meta.*``).
    encoding : str
        :class:`~fusion_utils.fusion.metadata.MetadataEncoder` encoding of the metadata.
    classifier_params : dict, optional
        :class:`~fusion_utils.fusion.softmax.SoftmaxClassifier` settings of the softmax baselines
        (default: the paper's, as in the book's grid).
    config : DVMEConfig, optional
        DVME's settings (its ``seed`` seeds all three DVME fits).
    n_bootstrap, bootstrap_seed : int
        Bootstrap resamples and seed of the CIs.
    """
    from fusion_utils.evaluation.metrics import macro_auroc
    from fusion_utils.evaluation.significance import bootstrap_macro_ci
    from fusion_utils.fusion.metadata import MetadataEncoder
    from fusion_utils.fusion.train import align_metadata, manifest_classes

    cfg = config or DVMEConfig()
    params = dict(classifier_params or {})
    classes = manifest_classes(manifest, sources.labels)
    split = sources.split
    masks = {s: split == s for s in ("train", "val", "test")}
    for s, m in masks.items():
        if not m.any():
            raise ValueError(f"the sources have no {s!r} records; meta-embeddings need train, "
                             "val (early stopping, backbone choice) and test")
    y = sources.labels
    say = print if progress else (lambda *a, **k: None)

    # (a) each backbone alone, then (b) all concatenated: the softmax classifier, image and fused
    fits: list[dict[str, Any]] = []
    selection, singles = [], []
    for k, name in enumerate(sources.names):
        t0 = time.perf_counter()
        res = _softmax_models(sources.feature_set(k), manifest, metadata_columns, encoding, params)
        singles.append(res)
        row = {"source": name}
        for model, key in (("image", "val_auroc"), ("fused", "val_auroc_meta")):
            proba = _probas(res, model, classes).to_numpy()
            row[key] = macro_auroc(y[masks["val"]], proba[masks["val"]], classes)
        selection.append(row)
        say(f"softmax on {name}: {time.perf_counter() - t0:.1f} s")
    selection_df = pd.DataFrame(selection)
    best = int(np.nanargmax(selection_df["val_auroc"].to_numpy()))
    best_meta = int(np.nanargmax(selection_df["val_auroc_meta"].to_numpy()))
    selection_df["chosen"] = [("single" if k == best else "")
                              + (" single+meta" if k == best_meta else "")
                              for k in range(len(selection_df))]
    selection_df["chosen"] = selection_df["chosen"].str.strip()
    t0 = time.perf_counter()
    concat = _softmax_models(sources.concatenated(), manifest, metadata_columns, encoding, params)
    say(f"softmax on the concatenation: {time.perf_counter() - t0:.1f} s")
    test = masks["test"]
    probas: dict[str, np.ndarray] = {
        "single": _probas(singles[best], "image", classes).to_numpy()[test],
        "single+meta": _probas(singles[best_meta], "fused", classes).to_numpy()[test],
        "concat": _probas(concat, "image", classes).to_numpy()[test],
        "concat+meta": _probas(concat, "fused", classes).to_numpy()[test],
    }
    for model, res, key in (("single", singles[best], "image"),
                            ("single+meta", singles[best_meta], "fused"),
                            ("concat", concat, "image"), ("concat+meta", concat, "fused")):
        f = res["fit"][key]
        fits.append({"model": model, "seconds": f["fit_seconds"], "epochs": f["epochs"],
                     "best_epoch": None, "n_features": f["n_features"]})

    # (c) DVME: no metadata, metadata as a token, metadata after attention
    meta = align_metadata(None, manifest, metadata_columns, ids=sources.ids)
    encoder = MetadataEncoder(encoding=encoding).fit(meta[masks["train"]])
    G = np.asarray(encoder.transform(meta), dtype=np.float64)
    attention_frames, histories = [], {}
    for model, how in (("dvme", "none"), ("dvme+meta-token", "token"),
                       ("dvme+meta-concat", "concat")):
        part = {s: [x[m] for x in sources.X] for s, m in masks.items()}
        gm = {s: (G[m] if how != "none" else None) for s, m in masks.items()}
        clf = DVMEClassifier(classes, cfg, metadata=how).fit(
            part["train"], y[masks["train"]], part["val"], y[masks["val"]],
            meta=gm["train"], meta_val=gm["val"])
        probas[model] = clf.predict_proba(part["test"], gm["test"])
        tokens = [*sources.names, *([METADATA_TOKEN] if how == "token" else [])]
        received = clf.attention_received(part["test"], gm["test"])
        attention_frames.append(attention_by_class(received, y[test], classes, tokens)
                                .assign(model=model))
        histories[model] = clf.history_
        fits.append({"model": model, "seconds": clf.fit_time_, "epochs": clf.n_epochs_,
                     "best_epoch": clf.best_epoch_,
                     "n_features": sum(x.shape[1] for x in sources.X) + G.shape[1] * (
                         how != "none")})
        say(f"{model}: {clf.fit_time_:.1f} s, best epoch {clf.best_epoch_} of {clf.n_epochs_}")

    t0 = time.perf_counter()
    ci = bootstrap_macro_ci(y[test], probas, classes, n_bootstrap=n_bootstrap,
                            seed=bootstrap_seed, differences=list(DIFFERENCES))
    say(f"bootstrap ({n_bootstrap} resamples): {time.perf_counter() - t0:.1f} s")
    ci.insert(2, "family", ci["model"].map(lambda m: MODELS.get(m, ("difference", ""))[0]))
    ci.insert(3, "metadata", ci["model"].map(lambda m: MODELS.get(m, ("", ""))[1]))
    attention = pd.concat(attention_frames, ignore_index=True)[
        ["model", "class", "source", "attention", "n_records"]]
    info = {"dataset": manifest.attrs.get("dataset") or str(manifest["dataset"].iloc[0]),
            "classes": list(classes), "sources": list(sources.names),
            "run_dirs": list(sources.run_dirs),
            "n_records": len(sources), "n_train": int(masks["train"].sum()),
            "n_val": int(masks["val"].sum()), "n_test": int(test.sum()),
            "best_single": sources.names[best], "best_single_meta": sources.names[best_meta],
            "metadata_columns": [str(c).removeprefix("meta.") for c in meta.columns],
            "encoding": encoding, "classifier_params": concat["parameters"],
            "dvme": asdict(cfg), "n_bootstrap": int(n_bootstrap),
            "bootstrap_seed": int(bootstrap_seed)}
    return MetaEmbeddingResult(ci, attention, selection_df, probas, pd.DataFrame(fits), info,
                               histories)


def summary_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = ("auroc", "sensitivity"),
                  digits: int = 3) -> pd.DataFrame:
    """One row per model: ``estimate [ci_low, ci_high]`` of the chosen macro metrics.

    ``sensitivity`` (macro mean recall) is shown as balanced accuracy.
    """
    names = {"auroc": "macro AUROC", "sensitivity": "balanced accuracy"}
    rows = metrics[metrics["metric"].isin(metrics_shown)]
    table = {}
    for (model, metric), r in rows.set_index(["model", "metric"]).iterrows():
        table.setdefault(model, {})[names.get(metric, metric)] = (
            f"{r['estimate']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]")
    order = list(dict.fromkeys(rows["model"]))
    out = pd.DataFrame.from_dict(table, orient="index").loc[order]
    out = out[[names.get(m, m) for m in metrics_shown if names.get(m, m) in out.columns]]
    out.index.name = "model"
    return out


def answer(metrics: pd.DataFrame, metric: str = "auroc") -> str:
    """A plain answer: does a learned combination beat the best single backbone?

    Reads the paired differences ``"<new> - single"`` and ``"<new> - single+meta"`` of the macro
    ``metric`` and calls a combination better (worse) when the whole 95% interval of its
    difference lies above (below) 0, otherwise not distinguishable.
    """
    label = {"auroc": "macro AUROC", "sensitivity": "balanced accuracy"}.get(metric, metric)
    rows = metrics[metrics["metric"] == metric].set_index("model")
    sentences = []
    for base, new in DIFFERENCES:
        key = f"{new} - {base}"
        if key not in rows.index:
            continue
        r = rows.loc[key]
        verdict = ("better than" if r["ci_low"] > 0 else
                   "worse than" if r["ci_high"] < 0 else "not distinguishable from")
        sentences.append(f"`{new}` is {verdict} `{base}` ({label} difference "
                         f"{r['estimate']:+.3f}, 95% CI [{r['ci_low']:+.3f}, "
                         f"{r['ci_high']:+.3f}])")
    if not sentences:
        raise ValueError("metrics hold no paired differences to the best single backbone")
    better = [s for s in sentences if " is better than " in s]
    head = (f"{len(better)} of {len(sentences)} combinations beat the best single backbone "
            f"on {label}. ")
    return head + "; ".join(sentences) + "."


# --------------------------------------------------------------------------------------------
# real data: the command line and the committed tables


def results_folder() -> Path:
    """``results/real/meta_embedding`` under the project root."""
    from fusion_utils.experiments.real_edition import results_dir

    return results_dir() / "meta_embedding"


def committed_meta_embedding(dataset: str, folder: str | os.PathLike[str] | None = None
                             ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]] | None:
    """The committed real tables of ``dataset``: ``(metrics, attention, provenance)``, or None.

    Files: ``<folder>/<dataset>.parquet`` (metrics with CIs), ``<dataset>_attention.parquet``
    and the ``dataset`` entry of ``PROVENANCE.json``.
    """
    base = Path(folder) if folder else results_folder()
    path = base / f"{dataset}.parquet"
    if not path.is_file():
        return None
    prov_path = base / "PROVENANCE.json"
    prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
    return (pd.read_parquet(path), pd.read_parquet(base / f"{dataset}_attention.parquet"),
            prov.get(dataset, {}))


def run_real(dataset: str, *, run_dirs: str | None = None, manifest_path: str | None = None,
             out_dir: str | os.PathLike[str] | None = None, seed: int = 0,
             n_bootstrap: int = 1000, threads: int = 1, l2: float = 0.0,
             command: str = "") -> Path:
    """Compute the comparison on the real features and write the committed tables.

    Defaults: every ``runs/real/<dataset>-*-bn-noaug`` folder with ``features.npz``, the real
    manifest ``cache/manifests/<dataset>_real.parquet``, ``results/real/meta_embedding``.
    Writes ``<dataset>.parquet``, ``<dataset>_attention.parquet`` and this dataset's entry of
    ``PROVENANCE.json`` (command, git commit, data and feature checksums, machine, seconds).
    ``threads`` torch threads: one is the fastest on a shared 2-core machine, and a fixed count
    keeps DVME's sums in one order. ``l2``: the softmax baselines' penalty (0: the paper's, as in
    the grid, whose numbers the best single backbone then reproduces).
    """
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.experiments.real_edition import (
        data_checksums,
        machine_description,
        real_manifest_path,
    )
    from fusion_utils.io import atomic_path, atomic_write_json, file_sha256
    from fusion_utils.paths import check_dataset
    from fusion_utils.run_folder import git_commit

    dataset = check_dataset(dataset)
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    sources = load_sources(run_dirs or f"runs/real/{dataset}-*-bn-noaug")
    man_path = Path(manifest_path) if manifest_path else real_manifest_path(dataset)
    manifest = load_manifest(man_path)
    result = compare_meta_embeddings(sources, manifest, config=DVMEConfig(seed=seed),
                                     classifier_params={"l2": float(l2)},
                                     n_bootstrap=n_bootstrap, bootstrap_seed=seed, progress=True)
    out = Path(out_dir) if out_dir else results_folder()
    out.mkdir(parents=True, exist_ok=True)
    for name, table in ((f"{dataset}.parquet", result.metrics),
                        (f"{dataset}_attention.parquet", result.attention)):
        with atomic_path(out / name, suffix=".parquet") as tmp:
            table.to_parquet(tmp, index=False)
    prov_path = out / "PROVENANCE.json"
    provenance = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
    provenance[dataset] = {
        "command": command or f"python -m fusion_utils.fusion.meta_embedding real --dataset "
                              f"{dataset}",
        "git_commit": git_commit(), "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_description(), "torch_threads": torch.get_num_threads(),
        "data_checksums_sha256": data_checksums(),
        "manifest": str(man_path), "manifest_sha256": file_sha256(man_path),
        "features_sha256": {d: file_sha256(Path(d) / "features.npz") for d in sources.run_dirs},
        "fits": result.fits.to_dict(orient="records"),
        "selection": result.selection.to_dict(orient="records"),
        **{k: v for k, v in result.info.items()},
    }
    atomic_write_json(prov_path, json.loads(json.dumps(provenance, default=str)))
    return out / f"{dataset}.parquet"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusion_utils.fusion.meta_embedding real --dataset ptbxl``."""
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.fusion.meta_embedding",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    real = sub.add_parser("real", help="the comparison on the real BN features -> "
                                       "results/real/meta_embedding/<dataset>.parquet")
    real.add_argument("--dataset", required=True, choices=["ptbxl", "ham10000"])
    real.add_argument("--run-dirs", default=None,
                      help="comma-separated run folders or globs (default: "
                           "runs/real/<dataset>-*-bn-noaug)")
    real.add_argument("--manifest", default=None,
                      help="default: cache/manifests/<dataset>_real.parquet")
    real.add_argument("--out-dir", default=None, help="default: results/real/meta_embedding")
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--n-bootstrap", type=int, default=1000)
    real.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    real.add_argument("--l2", type=float, default=0.0,
                      help="L2 penalty of the softmax baselines (default 0: the paper's)")
    args = parser.parse_args(argv)
    command = "python -m fusion_utils.fusion.meta_embedding " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    path = run_real(args.dataset, run_dirs=args.run_dirs, manifest_path=args.manifest,
                    out_dir=args.out_dir, seed=args.seed, n_bootstrap=args.n_bootstrap,
                    threads=args.threads, l2=args.l2, command=command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
