"""RunFolder: round trips of every run file, run.json content, and errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fusion_utils
from fusion_utils.io import file_sha256
from fusion_utils.run_folder import FILES, RunFolder, RunFolderError, git_commit

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


def _features(n: int = 6, d: int = 3):
    from fusion_utils.features.extraction import FeatureSet

    return FeatureSet(ids=[str(i) for i in range(n)], labels=np.array(CLASSES)[np.arange(n) % 5],
                      split=["train", "train", "val", "test", "train", "test"][:n],
                      X=np.arange(n * d, dtype=np.float32).reshape(n, d),
                      feature_names=FeatureSet.names(d), info={"backbone": "toy"})


def _predictions() -> pd.DataFrame:
    df = pd.DataFrame({"record_id": ["1", "2"], "split": ["test", "test"], "label": ["MI", "CD"],
                       "model": ["image", "image"]})
    for k, c in enumerate(CLASSES):
        df[f"prob.{c}"] = [0.2 + 0.01 * k, 0.2 - 0.01 * k]
    return df


def test_round_trips(tmp_path):
    from fusion_utils.interpret.weights import ClassifierWeights

    run = RunFolder(tmp_path / "run")
    assert not run.path.exists()  # the constructor creates nothing
    fs = _features()
    run.write_features(fs)
    back = run.read_features()
    np.testing.assert_array_equal(back.X, fs.X)
    assert back.ids.tolist() == fs.ids.tolist() and back.info == {"backbone": "toy"}

    run.write_predictions(_predictions())
    pd.testing.assert_frame_equal(run.read_predictions(), _predictions())
    assert run.prediction_classes() == CLASSES

    w = ClassifierWeights(np.array([[1.0, -2.0], [np.nan, np.nan]]), np.array([0.5, np.nan]),
                          np.array(["img.0000", "age"]), np.array(["MI", "CD"]),
                          feature_std=np.array([1.5, 2.0]))
    run.write_classifier("fused", w)
    got = run.read_classifier("fused")
    np.testing.assert_array_equal(got.coef, w.coef)
    np.testing.assert_array_equal(got.feature_std, w.feature_std)
    assert (got.classes.tolist() == ["MI", "CD"]
            and got.feature_names.tolist() == ["img.0000", "age"])

    metrics = pd.DataFrame({"metric": ["auroc"], "class": ["MI"], "model": ["fused"],
                            "value": [0.75], "extra": [1]})
    run.write_metrics(metrics)
    assert run.read_metrics().columns.tolist() == ["metric", "class", "model", "value"]
    assert run.read_metrics()["value"].tolist() == [0.75]

    run.write_timings({"fit_fused": 1.25, "extraction": None})
    assert run.read_timings() == {"fit_fused": 1.25, "extraction": None}
    run.write_feature_timings({"extraction_s": 3.0})
    assert run.read_feature_timings() == {"extraction_s": 3.0}
    assert run.read_status() == {"state": "pending"}  # no status.json yet
    run.write_status({"state": "done", "n_results": np.int64(4)})
    assert run.read_status() == {"state": "done", "n_results": 4}
    run.write_results(metrics)
    pd.testing.assert_frame_equal(run.read_results(), metrics)
    # every write was atomic: no temporary file is left behind
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == []


def test_run_json_records_every_stage(tmp_path):
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame({"record_id": ["1"]}).to_parquet(manifest)
    run = RunFolder(tmp_path / "run")
    run.record("features", {"backbone": "vgg16", "mode": "ft", "augment": True, "epochs": 2,
                            "seed": 3, "weights": "imagenet"},
               dataset="PTB-XL", manifest_path=manifest)
    run.record("fusion", {"encoding": "onehot", "metadata_columns": ("age", "sex"),
                          "l2": 0.01, "tol": 1e-6, "max_epochs": 2000, "solver": "lbfgs"},
               dataset="ptbxl", manifest_path=manifest)
    raw = json.loads(run.run_json.read_text())
    assert raw["dataset"] == "ptbxl"
    assert raw["package_version"] == fusion_utils.__version__
    assert raw["git_commit"] == git_commit()
    assert raw["created"] <= raw["updated"]
    assert list(raw["stages"]) == ["features", "fusion"]
    fusion = raw["stages"]["fusion"]["parameters"]
    assert fusion["metadata_columns"] == ["age", "sex"]  # tuples stored as lists
    assert fusion["manifest_sha256"] == file_sha256(manifest)
    assert fusion["manifest_path"] == str(manifest.resolve())
    params = run.parameters()
    assert params["dataset"] == "ptbxl" and params["backbone"] == "vgg16"
    assert params["encoding"] == "onehot" and params["l2"] == 0.01
    assert run.parameters("features")["seed"] == 3
    # a stage written again replaces its own entry only
    run.record("fusion", {"encoding": "paper"})
    assert run.parameters()["encoding"] == "paper" and run.parameters()["mode"] == "ft"
    assert "metadata_columns" not in run.parameters("fusion")
    with pytest.raises(RunFolderError, match="ham10000"):
        run.record("fusion", {}, dataset="ham10000")
    with pytest.raises(KeyError, match="evaluation"):
        run.parameters("evaluation")
    with pytest.raises(ValueError, match="stage="):
        run.record("nonsense", {})


def test_git_commit_outside_a_repository(tmp_path):
    assert git_commit(str(tmp_path)) is None
    sha = git_commit(str(Path(fusion_utils.__file__).parent))
    assert sha is None or (len(sha) == 40 and int(sha, 16) >= 0)


@pytest.mark.parametrize("name", ["features.npz", "predictions.parquet", "classifier_fused.npz",
                                  "metrics.parquet", "timings.json", "run.json"])
def test_missing_file_names_folder_file_and_writer(tmp_path, name):
    run = RunFolder(tmp_path / "empty")
    readers = {"features.npz": run.read_features, "predictions.parquet": run.read_predictions,
               "classifier_fused.npz": lambda: run.read_classifier("fused"),
               "metrics.parquet": run.read_metrics, "timings.json": run.read_timings,
               "run.json": run.parameters}
    with pytest.raises(FileNotFoundError) as info:
        readers[name]()
    text = str(info.value)
    assert name in text and str(run.path) in text
    assert "notebook" in text  # which chapter writes it
    if name != "run.json":
        assert FILES[name].split(" (")[0] in text or "notebook 04" in text


@pytest.mark.parametrize("name", ["features.npz", "predictions.parquet", "classifier_image.npz",
                                  "metrics.parquet", "status.json", "run.json"])
def test_damaged_file_names_the_file(tmp_path, name):
    run = RunFolder(tmp_path)
    (tmp_path / name).write_bytes(b"\x00not what it claims to be{")
    readers = {"features.npz": run.read_features, "predictions.parquet": run.read_predictions,
               "classifier_image.npz": lambda: run.read_classifier("image"),
               "metrics.parquet": run.read_metrics, "status.json": run.read_status,
               "run.json": run.parameters}
    with pytest.raises(RunFolderError, match=name.replace(".", r"\.")):
        readers[name]()


def test_wrong_content_is_refused(tmp_path):
    from fusion_utils import errors

    assert RunFolderError is errors.RunFolderError and issubclass(RunFolderError, ValueError)
    run = RunFolder(tmp_path)
    pd.DataFrame({"metric": ["auroc"], "value": [1.0]}).to_parquet(tmp_path / "metrics.parquet")
    with pytest.raises(RunFolderError, match="metrics.parquet.*class, model"):
        run.read_metrics()
    with pytest.raises(ValueError, match="class, model"):
        run.write_metrics(pd.DataFrame({"metric": ["a"], "value": [1.0]}))
    np.savez(tmp_path / "classifier_fused.npz", coef=np.ones((2, 3)))
    with pytest.raises(RunFolderError, match="classifier_fused.npz.*intercept"):
        run.read_classifier("fused")
    np.savez(tmp_path / "classifier_image.npz", coef=np.ones((2, 3)), intercept=np.ones(3),
             feature_names=np.array(["a", "b", "c"]), classes=np.array(["x", "y"]))
    with pytest.raises(RunFolderError, match="classifier_image.npz.*inconsistent"):
        run.read_classifier("image")
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(RunFolderError, match="run.json.*object"):
        run.parameters()
    with pytest.raises(ValueError, match="prob"):
        run.write_predictions(_predictions().drop(columns=[f"prob.{c}" for c in CLASSES]))
    with pytest.raises(KeyError, match="not a run-folder file"):
        run.file("notes.txt")


def test_for_notebook_resolves_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_PROJECT_ROOT", str(tmp_path))
    assert RunFolder.for_notebook("PTB-XL", "").path == tmp_path / "runs" / "single" / "ptbxl"
    assert RunFolder.for_notebook("ptbxl", "runs/x").path == tmp_path / "runs" / "x"
    assert RunFolder.for_notebook("ptbxl", "/abs/run").path == Path("/abs/run")
