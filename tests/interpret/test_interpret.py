"""Run folders as the interpretability chapter finds and loads them (to move into test_runs.py)."""

from __future__ import annotations

import numpy as np

from fusion_utils import interpret as I

CLASSES = np.array(["a", "b", "c"])


def test_load_run_and_find_runs(tmp_path):
    from fusion_utils.run_folder import RunFolder

    run = tmp_path / "runs" / "ptbxl-x-ft-aug"
    img = I.ClassifierWeights(np.ones((3, 2)), np.zeros(3), np.array(["img.0000", "img.0001"]),
                              CLASSES)
    fused = I.ClassifierWeights(np.ones((3, 3)), np.zeros(3),
                                np.array(["img.0000", "img.0001", "age"]), CLASSES)
    img.save(run / "classifier_image.npz")
    fused.save(run / "classifier_fused.npz")
    RunFolder(run).record("features", {"backbone": "vgg16", "mode": "ft", "augment": True})
    other = tmp_path / "runs" / "ham"
    I.ClassifierWeights(np.ones((2, 1)), np.zeros(2), np.array(["age"]),
                        np.array(["nv", "mel"])).save(other / "classifier_fused.npz")
    assert I.find_runs(tmp_path / "runs") == [other, run]
    assert I.find_runs(tmp_path / "runs", classes=CLASSES) == [run]
    rw = I.load_run(run)
    assert rw.label == "vgg16 FT aug"
    assert rw.fused.blocks.meta_names.tolist() == ["age"]
    assert I.find_runs(tmp_path / "nothing") == []
    # run.json stores the augmentation as None (without) or as its description (with)
    for aug, expected in ((None, "noaug"), ({"max_shift": 30}, "aug"), (False, "noaug")):
        RunFolder(run).record("features", {"backbone": "vgg16", "mode": "bn", "augment": aug})
        rw = I.load_run(run)
        assert rw.label == f"vgg16 BN {expected}" and rw.augmented == (expected == "aug")
