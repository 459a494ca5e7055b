"""interpret.runs reads a run's parameters from run.json only, and rebuilds H without trial."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from fusion_utils import interpret as I
from fusion_utils.run_folder import RunFolder

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


def _manifest(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5
    split = np.array(["train", "train", "train", "val", "test"])[rng.integers(0, 5, n)]
    split[:10] = "train"
    df = pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n)], "dataset": "ptbxl",
        "label": np.array(CLASSES)[y], "split": split,
        "meta.age": rng.normal(60, 12, n).round() + 4 * y,
        "meta.sex": np.where(rng.random(n) < 0.4 + 0.1 * y, "male", "female"),
    })
    df.attrs.update(dataset="ptbxl", classes=CLASSES)
    return df


def _write(run_dir, manifest: pd.DataFrame, encoding: str = "paper", manifest_path=None) -> None:
    from fusion_utils.features.extraction import FeatureSet
    from fusion_utils.fusion import train as fusion

    rng = np.random.default_rng(1)
    y = np.array([CLASSES.index(c) for c in manifest["label"]])
    X = np.maximum(rng.normal(size=(len(manifest), 6)) + rng.normal(size=(5, 6))[y], 0)
    fs = FeatureSet(ids=manifest["record_id"].to_numpy(), labels=manifest["label"].to_numpy(),
                    split=manifest["split"].to_numpy(), X=X.astype(np.float32),
                    feature_names=FeatureSet.names(6),
                    info={"dataset": "ptbxl", "backbone": "toy", "mode": "bn", "seconds": 2.0})
    run = RunFolder(run_dir)
    run.write_features(fs)
    run.record("features", {"backbone": "toy", "mode": "bn", "augment": None, "seed": 0},
               dataset="ptbxl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fusion.train_image_and_fused(fs, manifest, metadata_columns=["age", "sex"],
                                              encoding=encoding,
                                              classifier_params={"l2": 1e-2, "max_epochs": 300})
    fusion.write_run(run, result, fs.info, manifest_path=manifest_path)


@pytest.fixture(scope="module")
def onehot_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    manifest = _manifest()
    mpath = root / "manifest.parquet"
    manifest.to_parquet(mpath)
    _write(root / "run", manifest, encoding="onehot", manifest_path=mpath)
    return root / "run", manifest, mpath


def test_write_run_records_the_fusion_parameters(onehot_run):
    from fusion_utils.io import file_sha256

    run, _manifest_df, mpath = onehot_run
    fusion = I.run_parameters(run, "fusion")
    assert fusion["encoding"] == "onehot"
    assert fusion["metadata_columns"] == ["age", "sex"]
    assert fusion["classes"] == CLASSES
    clf = fusion  # classifier settings by their SoftmaxClassifier names
    assert (clf["l2"], clf["max_epochs"], clf["tol"], clf["solver"]) == (0.01, 300, 1e-6, "lbfgs")
    assert fusion["manifest_sha256"] == file_sha256(mpath)
    merged = I.run_parameters(run)
    assert merged["backbone"] == "toy" and merged["encoding"] == "onehot"
    assert merged["dataset"] == "ptbxl"
    rw = I.load_run(run)
    assert rw.label == "toy BN noaug" and rw.info == merged


def test_parameters_never_come_from_an_executed_notebook(onehot_run, tmp_path):
    """A papermill notebook in the run folder that says otherwise is ignored; without run.json
    there are no parameters at all (no fallback)."""
    run, _m, _p = onehot_run
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"encoding": "paper"}}},
          "nbformat": 4, "nbformat_minor": 5}
    (run / "04_fusion.ipynb").write_text(json.dumps(nb))
    try:
        assert I.run_parameters(run)["encoding"] == "onehot"
    finally:
        (run / "04_fusion.ipynb").unlink()
    (tmp_path / "04_fusion.ipynb").write_text(json.dumps(nb))
    with pytest.raises(FileNotFoundError, match="run.json"):
        I.run_parameters(tmp_path)


def test_load_fused_data_uses_the_recorded_encoding(onehot_run):
    run, manifest, _p = onehot_run
    data = I.load_fused_data(run, manifest)
    assert data.encoding == "onehot" and data.metadata_columns == ["age", "sex"]
    assert data.max_abs_diff < 1e-9
    assert data.X.shape == (len(manifest), 6 + 1 + 2)  # age, sex one-hot (female, male)
    fused = RunFolder(run).read_classifier("fused")
    assert data.feature_names.tolist() == fused.feature_names.tolist()


def test_load_fused_data_does_not_try_other_encodings(onehot_run, tmp_path):
    """run.json says 'paper' for a classifier trained on one-hot columns: an error, not a
    search for the encoding that fits."""
    import shutil

    run, manifest, _p = onehot_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    params = RunFolder(copy).parameters("fusion")
    RunFolder(copy).record("fusion", {**params, "encoding": "paper"})
    with pytest.raises(ValueError, match="encoding 'paper'"):
        I.load_fused_data(copy, manifest)
    # stored probabilities that the classifier does not reproduce are refused too
    pred = RunFolder(run).read_predictions()
    pred.loc[pred["model"] == "fused", f"prob.{CLASSES[0]}"] += 0.1
    RunFolder(copy).record("fusion", params)
    RunFolder(copy).write_predictions(pred)
    with pytest.raises(ValueError, match="differ from predictions.parquet"):
        I.load_fused_data(copy, manifest)


def test_load_fused_data_names_missing_pieces(onehot_run, tmp_path):
    run, manifest, _p = onehot_run
    with pytest.raises(KeyError, match="manifest_path"):
        I.load_fused_data(run, manifest.drop(columns=["meta.sex"]))
    with pytest.raises(FileNotFoundError, match="run.json"):
        I.load_fused_data(tmp_path, manifest)
    RunFolder(tmp_path).record("features", {"backbone": "toy"})
    with pytest.raises(KeyError, match="fusion"):
        I.load_fused_data(tmp_path, manifest)


def test_class_order_comes_from_the_dataset_module(tmp_path):
    from fusion_utils.data.ptbxl import SUPERCLASSES
    from fusion_utils.fusion.train import manifest_classes

    m = _manifest()
    m.attrs = {}  # the dataset column alone decides
    assert manifest_classes(m) == list(SUPERCLASSES)
    with pytest.raises(ValueError, match="not ptbxl classes"):
        manifest_classes(m, ["NORM", "nv"])
    with pytest.raises(ValueError, match="single dataset"):
        manifest_classes(m.drop(columns=["dataset"]))
    import fusion_utils.fusion.train as train

    assert not hasattr(train, "class_order")  # the hard-coded copy is gone


def test_pick_main_run_by_name_or_the_papers_fig5_run(tmp_path) -> None:
    from types import SimpleNamespace

    from fusion_utils.interpret.runs import pick_main_run

    def run(folder, label, mode, augmented):
        return SimpleNamespace(run_dir=tmp_path / folder, label=label, mode=mode,
                               augmented=augmented)

    loaded = [run("a-bn-noaug", "A BN", "bn", False), run("a-ft-noaug", "A FT", "ft", False),
              run("a-ft-aug", "A FT aug", "ft", True)]
    assert pick_main_run(loaded).run_dir.name == "a-ft-aug"  # fine-tuned with augmentation
    assert pick_main_run(loaded[:2]) is loaded[0]  # none: the first run
    assert pick_main_run(loaded, " a-ft-noaug ") is loaded[1]  # folder name
    assert pick_main_run(loaded, "A BN") is loaded[0]  # label
    assert pick_main_run(loaded, str(tmp_path / "a-ft-aug")) is loaded[2]  # path
    with pytest.raises(ValueError, match="main_run='zzz' is none of the runs: a-bn-noaug"):
        pick_main_run(loaded, "zzz")
