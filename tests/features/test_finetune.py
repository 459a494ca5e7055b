"""Fine-tuning: the loss falls on a separable set, checkpoints resume exactly, the last epoch's
network is returned (MATLAB R2021a) unless the best-validation one is asked for (R2021b)."""

from __future__ import annotations

import pytest
import torch

from fusion_utils.features.backbones import get_backbone
from fusion_utils.features.finetune import FinetuneOptions, finetune, resolve_device

SIZE = 64


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class TwoColours(torch.utils.data.Dataset):
    """Reddish vs bluish noisy images: linearly separable from the first epoch (``flip``: the
    labels swapped, so a network that learns the training set gets worse on it every epoch)."""

    classes = ("red", "blue")

    def __init__(self, n: int, seed: int, flip: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        base = torch.where(self.y[:, None] == 0, torch.tensor([1.0, -1.0, -1.0]),
                           torch.tensor([-1.0, -1.0, 1.0]))
        self.x = base[:, :, None, None] + 0.8 * torch.randn(n, 3, SIZE, SIZE, generator=g)
        if flip:
            self.y = 1 - self.y
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i]), i


OPTS = FinetuneOptions(epochs=3, batch_size=8, lr=0.01)


def _run(ckdir=None, epochs: int = 3, train=None):
    bb = get_backbone("efficientnet_lite0")
    train = train or TwoColours(16, seed=0)
    res = finetune(bb, train, TwoColours(8, seed=1), options=FinetuneOptions(
        epochs=epochs, batch_size=8, lr=0.01), seed=0, device="cpu", checkpoint_dir=ckdir,
        num_workers=0, progress=False)
    return res, train


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ckdir = tmp_path_factory.mktemp("ft_full")
    res, train = _run(ckdir)
    torch.set_num_threads(threads)
    return res, train, ckdir


def test_training_loss_falls_and_head_is_replaced(full) -> None:
    res, train, _ = full
    h = res.history
    assert list(h.columns) == ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"]
    assert h["epoch"].tolist() == [1, 2, 3]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["train_loss"].is_monotonic_decreasing
    assert h["val_accuracy"].iloc[-1] >= 0.75
    assert res.backbone.num_classes == 2
    assert train.epochs == [1, 2, 3]  # augmentation is re-drawn every epoch
    assert res.best_epoch == 3  # R2021a: the last epoch's network
    assert not res.backbone.features.training


def test_checkpoints_resume_to_the_same_network(full, tmp_path) -> None:
    res_full, _, _ = full
    first, _ = _run(tmp_path, epochs=2)
    assert first.resumed_from == 0 and len(first.history) == 2
    assert {p.name for p in tmp_path.iterdir()} >= {"last.pt", "best.pt"}
    resumed, train = _run(tmp_path, epochs=3)
    assert resumed.resumed_from == 2 and train.epochs == [3]
    assert resumed.history["epoch"].tolist() == [1, 2, 3]
    for col in ("train_loss", "val_loss"):
        torch.testing.assert_close(torch.tensor(resumed.history[col].to_numpy()),
                                   torch.tensor(res_full.history[col].to_numpy()),
                                   rtol=1e-4, atol=1e-5)
    x = TwoColours(4, seed=5).x
    with torch.inference_mode():
        torch.testing.assert_close(resumed.backbone.model()(x), res_full.backbone.model()(x),
                                   rtol=1e-4, atol=1e-4)


def test_finished_run_returns_from_checkpoint_without_training(full) -> None:
    res_full, _, ckdir = full
    again, train = _run(ckdir, epochs=3)
    assert again.resumed_from == 3 and train.epochs == []
    assert again.best_epoch == res_full.best_epoch
    x = TwoColours(4, seed=6).x
    with torch.inference_mode():
        torch.testing.assert_close(again.backbone.model()(x), res_full.backbone.model()(x))


def test_checkpoint_of_another_configuration_is_refused(full) -> None:
    _, _, ckdir = full
    bb = get_backbone("efficientnet_lite0")
    with pytest.raises(ValueError, match="another configuration"):
        finetune(bb, TwoColours(8, 0), None, options=FinetuneOptions(epochs=3, batch_size=4),
                 checkpoint_dir=ckdir, progress=False, device="cpu")


def test_options_and_device_validation() -> None:
    assert FinetuneOptions().resolved("ham10000").batch_size == 128
    assert FinetuneOptions().resolved("ptbxl").batch_size == 64
    assert FinetuneOptions(batch_size=5).resolved("ptbxl").batch_size == 5
    assert (FinetuneOptions().lr, FinetuneOptions().momentum) == (3e-4, 0.9)
    with pytest.raises(ValueError, match="unknown fine-tuning option"):
        FinetuneOptions.from_any({"epoch": 3})
    with pytest.raises(ValueError, match="select"):
        FinetuneOptions(select="auc")
    assert FinetuneOptions().output_network == "last-iteration"
    with pytest.raises(ValueError, match="best-validation-loss"):
        FinetuneOptions(output_network="best")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        resolve_device("tpu")


def _weights_of(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)


def test_last_epoch_by_default_best_validation_epoch_when_asked(tmp_path) -> None:
    """Validation labels swapped: the validation loss rises every epoch, so the best validated
    epoch (1) and the last (3) differ, and each option must return its own epoch's weights."""

    def run(output_network: str, ckdir=None):
        opts = FinetuneOptions(epochs=3, batch_size=8, lr=0.01, output_network=output_network)
        return finetune(get_backbone("efficientnet_lite0"), TwoColours(16, seed=0),
                        TwoColours(8, seed=1, flip=True), options=opts, seed=0, device="cpu",
                        checkpoint_dir=ckdir, num_workers=0, keep_all=ckdir is not None,
                        progress=False)

    last = run("last-iteration", tmp_path)
    val_loss = last.history["val_loss"].to_numpy()
    assert (val_loss[1:] > val_loss[:-1]).all(), val_loss  # the set-up this test relies on
    assert last.best_epoch == 3
    _assert_same_weights(last.backbone.model(), _weights_of(tmp_path / "epoch_003.pt"))
    best = run("best-validation-loss")  # no checkpoint folder: the epoch kept in memory
    assert best.best_epoch == 1
    _assert_same_weights(best.backbone.model(), _weights_of(tmp_path / "epoch_001.pt"))
    assert not torch.equal(_weights_of(tmp_path / "epoch_001.pt")["head.weight"],
                           _weights_of(tmp_path / "epoch_003.pt")["head.weight"])
