"""Notebooks 04 (fusion) and 05 (evaluation) executed with papermill on a tiny synthetic run.

The run folder is written here in the ARCHITECTURE.md formats: a FeatureSet ``features.npz``
(ids, labels, split, X, feature_names, info) and a parquet manifest with ``meta.*`` columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
ROOT = Path(__file__).resolve().parents[1]


def _write_run(tmp: Path, n: int = 150, d: int = 12, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    labels = np.array(CLASSES)[np.arange(n) % 5]
    split = np.array(["train"] * 100 + ["val"] * 20 + ["test"] * 30)
    rng.shuffle(split)
    y = np.array([CLASSES.index(c) for c in labels])
    X = np.maximum(rng.normal(size=(n, d)) + 0.6 * (y[:, None] == np.arange(d) % 5), 0)
    ids = np.array([str(1000 + i) for i in range(n)])
    run = tmp / "run"
    run.mkdir()
    np.savez(run / "features.npz", ids=ids, labels=labels, split=split,
             X=X.astype(np.float32), feature_names=np.array([f"img.{i:04d}" for i in range(d)]),
             info=np.array(json.dumps({"backbone": "toy", "mode": "bn", "augment": False,
                                       "seconds": 12.5, "ft_seconds": 0.0})))
    age = rng.normal(60, 10, n) + 6 * (y == 1)
    age[3] = np.nan
    manifest = pd.DataFrame({
        "record_id": ids, "dataset": "ptbxl", "label": labels, "path": "/nonexistent",
        "group": ids, "split": split,
        "meta.age": age,
        "meta.sex": np.where((rng.random(n) < 0.5) | (y == 2), "male", "female"),
        "meta.recording_date": [f"{1985 + i % 15}-0{1 + i % 9}-1{i % 10} 1{i % 10}:0{i % 10}:30"
                                for i in range(n)],
    })
    manifest.attrs = {"dataset": "ptbxl", "classes": CLASSES}
    from fusion_utils.data.manifest import save_manifest

    path = save_manifest(manifest, tmp / "manifest.parquet")
    return run, path


def test_parameters_documented():
    p04 = notebook_parameters("04_fusion")
    assert list(p04) == ["dataset", "run_dir", "manifest_path", "metadata_columns", "encoding",
                         "training", "l2", "standardize", "max_epochs", "tol", "seed"]
    assert p04["training"]["default"] in ("'converged'", '"converged"', "converged")
    p05 = notebook_parameters("05_evaluation")
    assert list(p05) == ["dataset", "run_dir", "n_bootstrap", "seed", "config_label"]
    assert all(p["help"] for p in [*p04.values(), *p05.values()])


def test_grids_route_the_training_parameter_to_notebook_04():
    from fusion_utils.experiments.spec import load_grid

    for grid_file in ("book.yaml", "real.yaml"):
        spec = yaml.safe_load((ROOT / "experiments" / grid_file).read_text())
        spec["defaults"] = {**spec.get("defaults", {}), "training": "paper"}
        grid = load_grid(spec)
        config = grid.configurations[0]
        routed = {nb.stem: p for nb, p in grid.notebook_parameters(config, "runs/x")}
        assert routed["04_fusion"]["training"] == "paper", grid_file
        assert "training" not in routed["03_feature_extraction"]
        assert "training" not in routed["05_evaluation"]


@pytest.mark.slow
def test_notebooks_04_05_write_the_run_folder(tmp_path):
    run, manifest = _write_run(tmp_path)
    execute_notebook("04_fusion", tmp_path / "04.ipynb",
                     {"run_dir": str(run), "manifest_path": str(manifest), "l2": 0.01},
                     timeout=300)
    pred = pd.read_parquet(run / "predictions.parquet")
    assert list(pred.columns) == ["record_id", "split", "label", "model",
                                  *[f"prob.{c}" for c in CLASSES]]
    assert len(pred) == 300 and set(pred["model"]) == {"image", "fused"}
    np.testing.assert_allclose(pred.filter(like="prob.").sum(axis=1), 1.0)
    with np.load(run / "classifier_fused.npz") as z:
        assert z["coef"].shape == (5, 12 + 1 + 1 + 6)
        assert z["classes"].tolist() == CLASSES
        assert z["feature_names"].tolist()[-7:] == [
            "age", "sex", "recording_date.year", "recording_date.month", "recording_date.day",
            "recording_date.hour", "recording_date.minute", "recording_date.second"][-7:]
        assert z["feature_std"].shape == (20,)
    with np.load(run / "classifier_image.npz") as z:
        assert z["coef"].shape == (5, 12)
    timings = json.loads((run / "timings.json").read_text())
    assert timings["extraction"] == 12.5 and timings["fit_fused"] > 0
    from fusion_utils.io import file_sha256
    from fusion_utils.run_folder import RunFolder

    recorded = RunFolder(run).parameters("fusion")  # run.json: what produced the classifiers
    assert recorded["encoding"] == "paper" and recorded["classes"] == CLASSES
    assert recorded["metadata_columns"] == ["age", "sex", "recording_date"]
    assert recorded["l2"] == 0.01 and recorded["max_epochs"] == 2000 and recorded["tol"] == 1e-6
    assert recorded["training"] == "converged" and recorded["solver"] == "lbfgs"
    assert timings["training"] == "converged"
    assert recorded["manifest_sha256"] == file_sha256(manifest)

    out = execute_notebook("05_evaluation", tmp_path / "05.ipynb",
                           {"run_dir": str(run), "n_bootstrap": 20, "config_label": "toy"},
                           timeout=300)
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert list(metrics.columns) == ["metric", "class", "model", "value"]
    assert set(metrics["class"]) == {*CLASSES, "macro_mean", "macro_std"}
    assert metrics["metric"].nunique() == 9 and set(metrics["model"]) == {"image", "fused"}
    sig = pd.read_parquet(run / "significance.parquet")
    assert list(sig.columns) == ["class", "auc_image", "auc_fused", "diff", "p_value", "stars"]
    assert sig["class"].tolist() == CLASSES
    np.testing.assert_allclose(sig["diff"], sig["auc_fused"] - sig["auc_image"])
    nb = nbformat.read(out, as_version=4)
    glued = {o["metadata"]["scrapbook"]["name"]: o.get("data", {}) for c in nb.cells
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    figures = {"fig_eval_macro", "fig_eval_improvement", "fig_eval_classwise", "fig_eval_roc",
               "fig_eval_confusion"}
    assert figures <= set(glued)  # every figure glued for its {glue:figure} caption
    assert all(any(k.endswith("image/png") for k in glued[f]) for f in figures)
    assert "run " in str(glued["data_label"]) and "test records" in str(glued["data_label"])
    # the grid's reader accepts what notebook 05 wrote
    from fusion_utils.experiments.results import results_table

    res = results_table(run, {"config_id": "toy", "dataset": "ptbxl"})
    rows = res["metric"].eq("auroc") & res["model"].eq("fused") & res["class"].isin(CLASSES)
    assert res.loc[rows, "p_value"].notna().all()
