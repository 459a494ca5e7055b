"""Backbone registry: names, feature dimensions, offline ImageNet weights, clear offline errors."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from fusion_utils.features import backbones
from fusion_utils.features.backbones import (
    Backbone,
    WeightsUnavailableError,
    get_backbone,
    list_backbones,
    register_backbone,
)

DIMS = {
    "alexnet": 4096, "vgg16": 4096, "vgg19": 4096, "resnet50": 2048, "densenet201": 1920,
    "googlenet": 1024, "mobilenet_v2": 1280, "inception_resnet_v2": 1536,
    "efficientnet_lite0": 1280, "efficientnet_lite1": 1280, "efficientnet_lite2": 1280,
}
INPUT = {name: 224 for name in DIMS} | {"inception_resnet_v2": 299, "efficientnet_lite1": 240,
                                        "efficientnet_lite2": 260, "alexnet": 227}


# Batches of one or two images: one thread, no OpenMP contention on a busy machine.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_registry_lists_the_paper_networks_and_the_offline_default() -> None:
    assert list_backbones() == sorted(DIMS)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet50"):
        get_backbone("resnet51", weights=None)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet50", feature_dim=1, input_size=1, library="x")(lambda _: None)


def test_bad_weights_value() -> None:
    with pytest.raises(FileNotFoundError, match="no file at"):
        get_backbone("mobilenet_v2", weights="/nonexistent/file.pth")
    with pytest.raises(TypeError):
        get_backbone("mobilenet_v2", weights=3)


@pytest.mark.parametrize("name", sorted(DIMS))
def test_random_backbone_has_documented_feature_dim(name: str) -> None:
    torch.manual_seed(0)
    bb = get_backbone(name, weights=None)
    assert isinstance(bb, Backbone)
    assert (bb.feature_dim, bb.input_size, bb.weights_tag) == (DIMS[name], INPUT[name], "random")
    assert isinstance(bb.head, nn.Linear) and bb.head.in_features == DIMS[name]
    assert bb.num_classes == 1000
    # Every network ends in global pooling, so the feature size does not depend on the input
    # size; a smaller image keeps this test fast (the big networks take seconds at full size).
    size = 96 if name == "inception_resnet_v2" else 64
    if name == "efficientnet_lite0":
        size = 224
    x = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        f = bb.features(x)
        logits = bb.model()(x)
        via_head = bb.head(f)
    assert f.shape == (1, DIMS[name])
    assert logits.shape == (1, 1000)
    torch.testing.assert_close(logits, via_head)


def test_fc7_features_are_rectified() -> None:
    """alexnet/vgg features are fc7 after its ReLU (the documented choice): never negative."""
    torch.manual_seed(0)
    bb = get_backbone("alexnet", weights=None)
    with torch.inference_mode():
        f = bb.features(torch.randn(2, 3, 64, 64))
    assert (f >= 0).all() and (f > 0).any()


def test_replace_head_and_file_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    bb = get_backbone("mobilenet_v2", weights=None, num_classes=5)
    assert bb.num_classes == 5 and bb.head.in_features == 1280
    path = tmp_path / "mnv2.pt"
    torch.save(bb.model().state_dict(), path)
    again = get_backbone("mobilenet_v2", weights=path)
    assert again.num_classes == 5 and again.weights_tag.startswith("file:")
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(again.model()(x), bb.model()(x))


def test_library_state_dict_file_loads(tmp_path) -> None:
    """A torchvision-format file (as downloaded from download.pytorch.org) loads too."""
    from torchvision.models import mobilenet_v2

    torch.manual_seed(1)
    net = mobilenet_v2(weights=None).eval()
    path = tmp_path / "tv.pth"
    torch.save(net.state_dict(), path)
    bb = get_backbone("mobilenet_v2", weights=path)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(bb.model()(x), net(x))


def test_offline_efficientnet_lite0_sees_a_cat() -> None:
    """The packaged ImageNet weights classify scikit-image's Chelsea as a cat (classes 281-285)."""
    from skimage import data

    from fusion_utils.features.datasets import resize_image

    bb = get_backbone("efficientnet_lite0")
    assert bb.weights_tag.startswith("imagenet:")
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)
    x = resize_image(img, bb.input_size)
    x = (x - torch.tensor(bb.mean).view(3, 1, 1)) / torch.tensor(bb.std).view(3, 1, 1)
    with torch.inference_mode():
        probs = bb.model()(x[None]).softmax(1)[0]
    top = int(probs.argmax())
    assert 281 <= top <= 285
    assert float(probs[281:286].sum()) > 0.9


def test_imagenet_weights_offline_fail_fast_and_clearly(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(backbones, "_reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        get_backbone("resnet50", weights="imagenet")
    message = str(err.value)
    assert time.perf_counter() - t0 < 30  # a hang would take minutes; the figure is not timed
    assert "'resnet50'" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert "efficientnet_lite0" in message


def test_timm_weights_offline_error_names_the_hf_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(backbones, "_reachable", lambda *a, **k: False)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(WeightsUnavailableError, match="inception_resnet_v2.*models--timm--"
                       "inception_resnet_v2.*efficientnet_lite0"):
        get_backbone("inception_resnet_v2", weights="imagenet")


def test_cached_torchvision_weights_are_used(tmp_path, monkeypatch) -> None:
    """A file in $TORCH_HOME/hub/checkpoints is loaded through torchvision's weight enum."""
    from torchvision.models import mobilenet_v2

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(backbones, "_reachable", lambda *a, **k: False)
    torch.manual_seed(2)
    net = mobilenet_v2(weights=None).eval()
    ck = tmp_path / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    torch.save(net.state_dict(), ck / "mobilenet_v2-b0353104.pth")
    bb = get_backbone("mobilenet_v2", weights="imagenet")
    assert bb.weights_tag == "imagenet:IMAGENET1K_V1"
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(bb.model()(x), net(x))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet50"])
def test_fold_batchnorm_is_exact_and_leaves_no_batchnorm(name: str) -> None:
    from fusion_utils.features.backbones import fold_batchnorm

    torch.manual_seed(0)
    bb = get_backbone(name, weights="imagenet" if name == "efficientnet_lite0" else None)
    if name == "resnet50":  # give the BatchNorms non-trivial statistics
        for m in bb.features.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(bb.features)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in bb.features.modules())  # original intact
    x = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        ref, out = bb.features(x), folded(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
