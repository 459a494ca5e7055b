"""Self-supervised ResNet-50 weights (DINO, SwAV, Barlow Twins, MoCo v3) from a torch.hub cache.

Offline: a state dict of the right shape with known random values is written into a temporary
hub cache in each official file's layout (key prefix, nesting, extra projection-head tensors), and
the backbone must hold exactly those tensors; without the file the error is fast and names the
weights, the expected path and the command to run with internet.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50

from fusion_utils.features import backbones
from fusion_utils.features.backbones import (
    SELF_SUPERVISED_WEIGHTS,
    WeightsUnavailableError,
    get_backbone,
)
from fusion_utils.features.extraction import feature_cache_key

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch.hub cache, offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_reachable", lambda *a, **k: False)
    return tmp_path / "hub"


def _official_layout(key: str, seed: int) -> tuple[dict, dict]:
    """(file content in the official layout, the backbone tensors it should yield)."""
    torch.manual_seed(seed)
    net = resnet50(weights=None)
    with torch.no_grad():  # non-default BN statistics, so running buffers are checked too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    ssl = SELF_SUPERVISED_WEIGHTS[key]
    content = {ssl.prefix + k: v for k, v in state.items()}
    # tensors the official files also hold and the backbone must ignore
    content[ssl.prefix + "fc.0.weight"] = torch.ones(4096, 2048)[:8]  # MoCo v3 projector
    content["module.projection_head.0.weight"] = torch.ones(8, 2048)  # SwAV
    content["module.momentum_encoder.conv1.weight"] = torch.zeros(64, 3, 7, 7)  # MoCo v3
    if ssl.nested:
        content = {"epoch": 1000, "arch": "resnet50", ssl.nested: content}
    return content, state


@pytest.mark.parametrize("key", sorted(SELF_SUPERVISED_WEIGHTS))
def test_ssl_weights_load_the_cached_tensors(hub_dir: Path, key: str) -> None:
    ssl = SELF_SUPERVISED_WEIGHTS[key]
    content, expected = _official_layout(key, seed=7)
    file = hub_dir / "checkpoints" / ssl.url.rsplit("/", 1)[1]
    file.parent.mkdir(parents=True)
    torch.save(content, file)
    bb = get_backbone("resnet50", weights=key)
    got = bb.features.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
    assert bb.weights_tag == f"{key}:{file.name.split('.')[0]}"
    assert bb.feature_dim == 2048 and bb.head.out_features == 1000
    assert bb.mean == backbones.IMAGENET_MEAN
    # the same weights give the same features as torchvision's resnet50 holding those tensors
    ref = resnet50(weights=None).eval()
    ref.load_state_dict(expected, strict=False)
    ref.fc = torch.nn.Identity()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(bb.features(x), ref(x))


def test_missing_cache_fails_fast_naming_weights_path_and_command(hub_dir: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        get_backbone("resnet50", weights="dino")
    assert time.perf_counter() - t0 < 30  # a hang would take minutes; the figure is not timed
    message = str(err.value)
    assert "DINO self-supervised ImageNet weights ('dino')" in message
    assert str(hub_dir / "checkpoints" / "dino_resnet50_pretrain.pth") in message
    assert "torch.hub.load('facebookresearch/dino:main', 'dino_resnet50')" in message


def test_mocov3_error_names_the_official_url(hub_dir: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="r-50-1000ep.pth.tar"):
        get_backbone("resnet50", weights="mocov3")


def test_wrong_file_in_the_cache_is_refused(hub_dir: Path) -> None:
    file = hub_dir / "checkpoints" / "resnet50.pth"  # Barlow Twins' file name
    file.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, file)
    with pytest.raises(ValueError, match="not a Barlow Twins ResNet-50 checkpoint"):
        get_backbone("resnet50", weights="barlowtwins")


def test_ssl_weights_are_resnet50_only() -> None:
    with pytest.raises(ValueError, match="'resnet50' only"):
        get_backbone("efficientnet_lite0", weights="swav")


def test_ssl_weights_key_the_feature_cache() -> None:
    import pandas as pd

    manifest = pd.DataFrame({"record_id": ["a"], "dataset": ["ham10000"], "label": ["nv"],
                             "path": ["/nonexistent.jpg"], "group": ["g"], "split": ["train"]})
    keys = {w: feature_cache_key(manifest, "resnet50", w, "bn", None, 0, "float32",
                                 image_source={})["weights"]
            for w in ("imagenet", "dino", "SwAV", "barlowtwins", "mocov3")}
    assert keys == {"imagenet": "imagenet", "dino": "dino", "SwAV": "swav",
                    "barlowtwins": "barlowtwins", "mocov3": "mocov3"}
