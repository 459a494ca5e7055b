"""Notebook 03 executed through papermill with tiny parameters on the real samples."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest

from fusion_utils.data.manifest import build_manifest, save_manifest
from fusion_utils.features.extraction import FeatureSet
from fusion_utils.notebook_runner import execute_notebook, notebook_parameters

NOTEBOOK = "03_feature_extraction"
PARAMETERS = {"dataset": "str", "data_dir": "str", "manifest_path": "str", "run_dir": "str",
              "backbone": "str", "weights": "str", "mode": "str", "augment": "bool",
              "augment_splits": "str", "epochs": "int", "batch_size": "int",
              "output_network": "str", "device": "str", "precision": "str",
              "max_images": "int", "seed": "int"}


def _figures_and_errors(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error"
            n += "image/png" in out.get("data", {})
    return n


def test_parameters_are_documented() -> None:
    params = notebook_parameters(NOTEBOOK)
    assert {k: v["type"] for k, v in params.items()} == PARAMETERS
    assert all(v["help"] for v in params.values())
    nb = jupytext.read(Path(__file__).parents[1] / "notebooks" / f"{NOTEBOOK}.py")
    assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.shared_data
def test_fine_tuned_features_of_real_ham_images(shared_ham, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    df, _ = build_manifest("ham10000", shared_ham)
    save_manifest(df, tmp_path / "ham.parquet")
    run = tmp_path / "run"
    params = {"dataset": "ham10000", "manifest_path": str(tmp_path / "ham.parquet"),
              "run_dir": str(run), "mode": "ft", "epochs": 1, "batch_size": 8,
              "max_images": 16, "augment": True}
    out = execute_notebook(NOTEBOOK, tmp_path / "out.ipynb", params)
    assert _figures_and_errors(out) == 3  # augmented inputs, FT curves, PCA
    fs = FeatureSet.load(run / "features.npz")
    assert fs.X.shape == (16, 1280) and np.isfinite(fs.X).all()
    assert set(fs.ids) <= set(df.record_id) and set(fs.split) == {"train", "val", "test"}
    assert fs.info["mode"] == "ft" and fs.info["augment"]["apply_to"] == "train+test"
    assert len(fs.info["ft_history"]) == 1 and fs.info["ft_options"]["batch_size"] == 8
    timings = json.loads((run / "feature_timings.json").read_text())
    assert timings["cache_hit"] is False and timings["extraction_s"] > 0
    from fusion_utils.io import file_sha256
    from fusion_utils.run_folder import RunFolder

    recorded = RunFolder(run).parameters("features")  # run.json: what produced features.npz
    assert (recorded["mode"], recorded["epochs"], recorded["max_images"]) == ("ft", 1, 16)
    assert recorded["manifest_sha256"] == file_sha256(tmp_path / "ham.parquet")


@pytest.mark.slow
@pytest.mark.shared_data
def test_bn_features_of_real_ptbxl_montages_and_cache_hit(shared_ptbxl, tmp_path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    manifest = tmp_path / "cache" / "manifests" / "ptbxl.parquet"
    params = {"dataset": "ptbxl", "data_dir": str(shared_ptbxl), "run_dir": str(tmp_path / "a"),
              "max_images": 10}
    execute_notebook(NOTEBOOK, tmp_path / "a.ipynb", params)  # builds the missing manifest
    assert manifest.is_file()
    first = FeatureSet.load(tmp_path / "a" / "features.npz")
    assert first.X.shape == (10, 1280) and first.info["mode"] == "bn"
    assert first.info["cache_key"]["images"]["source"] == "scalogram-montage"
    out = execute_notebook(NOTEBOOK, tmp_path / "b.ipynb",
                           {**params, "run_dir": str(tmp_path / "b")})
    assert _figures_and_errors(out) == 2  # inputs, PCA (no FT curves in BN)
    second = FeatureSet.load(tmp_path / "b" / "features.npz")
    np.testing.assert_array_equal(second.X, first.X)
    assert json.loads((tmp_path / "b" / "feature_timings.json").read_text())["cache_hit"] is True
