"""The paper's augmentation: measured bounds (shift <= 30 px per axis, rotation <= 90 degrees),
flips, seeding and the split rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusion_utils.features.augment import AugmentParams, PaperAugmentation, sample_seed

SIZE = 224
CENTRE = (SIZE - 1) / 2


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _dot(row: int, col: int) -> torch.Tensor:
    img = torch.zeros(3, SIZE, SIZE)
    img[:, row, col] = 1.0
    return img


def _where(img: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre (row, col) of channel 0."""
    w = img[0].clamp(min=0)
    rows, cols = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32),
                                torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    total = w.sum()
    assert total > 0, "the bright pixel left the image"
    return float((w * rows).sum() / total), float((w * cols).sum() / total)


def test_shift_is_at_most_30_pixels_per_axis_and_covers_the_range() -> None:
    aug = PaperAugmentation(AugmentParams(max_rotation=0, flip_x=False, flip_y=False),
                            generator=torch.Generator().manual_seed(0))
    row0, col0 = 112, 112
    dys, dxs = [], []
    for _ in range(150):
        r, c = _where(aug(_dot(row0, col0)))
        dys.append(r - row0)
        dxs.append(c - col0)
    dys, dxs = np.array(dys), np.array(dxs)
    assert np.abs(dxs).max() <= 30 + 1e-4 and np.abs(dys).max() <= 30 + 1e-4
    # whole-pixel shifts, drawn separately per axis over the full range
    np.testing.assert_allclose(dxs, np.round(dxs), atol=1e-4)
    assert np.abs(dxs).max() >= 28 and np.abs(dys).max() >= 28
    assert abs(np.corrcoef(dxs, dys)[0, 1]) < 0.2


def test_rotation_is_at_most_90_degrees_about_the_centre() -> None:
    aug = PaperAugmentation(AugmentParams(max_shift=0, flip_x=False, flip_y=False),
                            generator=torch.Generator().manual_seed(1))
    row0, col0 = 112, 190  # on the horizontal through the centre, right of it
    angles, radii = [], []
    for _ in range(120):
        r, c = _where(aug(_dot(row0, col0)))
        angles.append(math.degrees(math.atan2(-(r - CENTRE), c - CENTRE)))
        radii.append(math.hypot(r - CENTRE, c - CENTRE))
    angles = np.array(angles) - math.degrees(math.atan2(-(row0 - CENTRE), col0 - CENTRE))
    assert np.abs(angles).max() <= 90 + 0.5
    assert angles.max() > 80 and angles.min() < -80  # both directions, nearly the full range
    np.testing.assert_allclose(radii, math.hypot(row0 - CENTRE, col0 - CENTRE), atol=0.6)


def test_flips_are_reflections_in_x_and_y() -> None:
    img = torch.rand(3, 8, 8)
    p = {"dx": 0, "dy": 0, "angle": 0.0, "flip_x": True, "flip_y": False}
    torch.testing.assert_close(PaperAugmentation.apply(img, p), img.flip(-1))
    p = {"dx": 0, "dy": 0, "angle": 0.0, "flip_x": False, "flip_y": True}
    torch.testing.assert_close(PaperAugmentation.apply(img, p), img.flip(-2))
    draws = [PaperAugmentation(generator=torch.Generator().manual_seed(s)).draw()
             for s in range(400)]
    fx = np.mean([d["flip_x"] for d in draws])
    fy = np.mean([d["flip_y"] for d in draws])
    both = np.mean([d["flip_x"] and d["flip_y"] for d in draws])
    assert 0.4 < fx < 0.6 and 0.4 < fy < 0.6 and 0.17 < both < 0.33


def test_uncovered_pixels_are_black() -> None:
    img = torch.ones(3, SIZE, SIZE)
    p = {"dx": 30, "dy": -30, "angle": 0.0, "flip_x": False, "flip_y": False}
    out = PaperAugmentation.apply(img, p)
    assert float(out[:, :, :30].abs().max()) == 0.0  # shifted right: left band empty
    assert float(out[:, -30:, :].abs().max()) == 0.0  # shifted up: bottom band empty
    assert float(out[:, :-30, 30:].min()) == pytest.approx(1.0, abs=1e-4)


def test_same_seed_same_augmentation_different_records_differ() -> None:
    img = torch.rand(3, 64, 64)
    aug = PaperAugmentation()

    def run(record: str, epoch: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(sample_seed(7, record, epoch))
        return aug.augment(img, generator=g)

    torch.testing.assert_close(run("a"), run("a"))
    assert not torch.equal(run("a"), run("b"))
    assert not torch.equal(run("a", 0), run("a", 1))
    assert sample_seed(7, "a") == sample_seed(7, "a") != sample_seed(8, "a")


def test_apply_to_rule() -> None:
    paper = AugmentParams()
    assert all(paper.applies_to(s) for s in ("train", "val", "test"))
    train_only = AugmentParams(apply_to="train")
    assert train_only.applies_to("train") and not train_only.applies_to("test")
    assert not train_only.applies_to("val")  # validation goes with the test split
    with pytest.raises(ValueError, match="train, val, test"):
        paper.applies_to("validation")
    with pytest.raises(ValueError, match="train\\+test"):
        AugmentParams(apply_to="test")
