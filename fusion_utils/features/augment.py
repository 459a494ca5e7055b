"""The paper's image augmentation, seeded, on torchvision.transforms.v2.

Thomas (2021), section II.A: "a random shift in the image of up to 30 pixels from its origin
separately along the x and y axes, random reflections in x and/or y, and random rotations up to
90 degrees. These transformations are applied to the training and testing data when using
augmentations." This is MATLAB's ``imageDataAugmenter('RandXTranslation', [-30 30],
'RandYTranslation', [-30 30], 'RandXReflection', true, 'RandYReflection', true,
'RandRotation', [-90 90])``: every parameter is drawn uniformly and independently, pixels moved
in from outside the image are black (``FillValue`` 0).

Which images are augmented
--------------------------
The paper (section II.A) names the scope twice: "image augmentation during training or feature
extraction in the BN experiments" and "These transformations are applied to the training and
testing data when using augmentations". :class:`AugmentParams` therefore defaults to
``apply_to="train+test"``; ``apply_to="train"`` (notebook 03's ``augment_splits="train"``) is
the usual deep-learning practice, offered for comparison. The paper does not mention the
validation split. Here it follows the test split: it is augmented with ``"train+test"`` (the
validation images are held-out images, as the test images are) and left as it is with
``"train"``. What the validation split does in each set-up:

* BN: its features are extracted like every other split's, but the softmax classifier is
  trained on the training split only, so it does not change any result.
* FT: it is scored after every epoch (chapter 03's curves) with one fixed view per record
  (epoch 0). With MATLAB R2021a's behaviour (``output_network="last-iteration"``, the default
  of :class:`fusion_utils.features.finetune.FinetuneOptions`) it does not change the network;
  only with ``"best-validation-loss"`` does it pick the epoch, and then its augmentation matters.

Training images are drawn anew every fine-tuning epoch; features are extracted from one view per
record (epoch 0).

Choices made here (documented because the paper is silent):

* The augmentation acts on the network-sized image (after the bilinear resize), so "30 pixels"
  are pixels of the 224 x 224 (299 x 299) input.
* Shifts are whole pixels drawn from ``{-30, ..., 30}``; angles are continuous in [-90, 90];
  each reflection happens with probability 1/2; bilinear interpolation.
* Randomness comes from a :class:`torch.Generator`. :func:`sample_seed` derives one seed per
  (run seed, record, epoch), so an augmented image does not depend on batch order, the number of
  DataLoader workers, or on resuming an interrupted run.

Rather than chain ``v2.RandomAffine`` (whose translation is a fraction of the image size and
whose randomness is the global RNG), :class:`PaperAugmentation` is one ``v2.Transform`` that
draws the five parameters from its generator and applies ``v2.functional`` flips and ``affine``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ["APPLY_TO", "AugmentParams", "PaperAugmentation", "sample_seed"]

APPLY_TO: tuple[str, ...] = ("train+test", "train")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Parameters of the paper's augmentation (defaults: the paper's values).

    Attributes
    ----------
    max_shift : int
        Largest shift in pixels, drawn separately along x and along y.
    max_rotation : float
        Largest rotation in degrees, either direction.
    flip_x, flip_y : bool
        Random reflection about the vertical axis (x) / the horizontal axis (y), p = 1/2 each.
    apply_to : {"train+test", "train"}
        Which splits are augmented: all of them (the paper: "training and testing data"; the
        validation split goes with the test split) or only the training split.
    """

    max_shift: int = 30
    max_rotation: float = 90.0
    flip_x: bool = True
    flip_y: bool = True
    apply_to: str = "train+test"

    def __post_init__(self) -> None:
        if self.apply_to not in APPLY_TO:
            raise ValueError(f"apply_to={self.apply_to!r}: choose one of {', '.join(APPLY_TO)}")
        if int(self.max_shift) < 0 or float(self.max_rotation) < 0:
            raise ValueError("max_shift and max_rotation must be >= 0, got "
                             f"{self.max_shift!r} and {self.max_rotation!r}")

    def applies_to(self, split: str) -> bool:
        """Whether images of ``split`` (``train``/``val``/``test``) are augmented."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: a manifest split is one of {', '.join(SPLITS)}")
        return self.apply_to == "train+test" or split == "train"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (part of feature cache keys)."""
        return dataclasses.asdict(self)


def sample_seed(seed: int, record_id: str, epoch: int = 0) -> int:
    """A 63-bit seed for one record's augmentation, stable across runs and platforms."""
    digest = hashlib.sha256(f"{int(seed)}|{record_id}|{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class PaperAugmentation(v2.Transform):
    """Random flips, rotation and x/y shifts as in the paper, as one seeded v2 transform.

    Parameters
    ----------
    params : AugmentParams, optional
        Ranges (the paper's by default).
    generator : torch.Generator, optional
        Source of randomness; a fresh unseeded one otherwise. Pass ``generator=`` to
        :meth:`draw` / :meth:`augment` to use another one per call.

    Examples
    --------
    >>> aug = PaperAugmentation()
    >>> g = torch.Generator().manual_seed(sample_seed(0, "ISIC_0024306"))
    >>> out = aug.augment(torch.rand(3, 224, 224), generator=g)
    >>> out.shape
    torch.Size([3, 224, 224])
    """

    def __init__(self, params: AugmentParams | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.params = params or AugmentParams()
        self.generator = generator if generator is not None else torch.Generator()

    def draw(self, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Draw one set of parameters: ``dx``, ``dy`` (px), ``angle`` (deg), ``flip_x``,
        ``flip_y``."""
        g = generator if generator is not None else self.generator
        p = self.params
        s = int(p.max_shift)
        shifts = torch.randint(-s, s + 1, (2,), generator=g)
        angle = (torch.rand((), generator=g).item() * 2.0 - 1.0) * float(p.max_rotation)
        flips = torch.rand((2,), generator=g) < 0.5
        return {"dx": int(shifts[0]), "dy": int(shifts[1]), "angle": float(angle),
                "flip_x": bool(flips[0]) and p.flip_x, "flip_y": bool(flips[1]) and p.flip_y}

    @staticmethod
    def apply(image: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """Apply drawn parameters to an image tensor ``(..., C, H, W)``: flips, then rotation
        about the centre, then the shift; uncovered pixels become 0."""
        out = image
        if params["flip_x"]:
            out = TF.horizontal_flip(out)
        if params["flip_y"]:
            out = TF.vertical_flip(out)
        if params["angle"] != 0.0 or params["dx"] != 0 or params["dy"] != 0:
            out = TF.affine(out, angle=params["angle"], translate=[params["dx"], params["dy"]],
                            scale=1.0, shear=[0.0, 0.0],
                            interpolation=v2.InterpolationMode.BILINEAR, fill=0.0)
        return out

    def augment(self, image: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw parameters and apply them to ``image``."""
        return self.apply(image, self.draw(generator))

    # torchvision.transforms.v2 protocol: one draw shared by all inputs of a call.
    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return self.draw()

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self.apply(inpt, params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params.as_dict().items())
