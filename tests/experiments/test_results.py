"""Tests of fusion_utils.experiments.results: per-run results tables and collect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.experiments.results import (
    RESULT_COLUMNS,
    RUN_COLUMNS,
    add_run_columns,
    collect,
    load_results,
    main,
    results_table,
    run_columns,
)
from fusion_utils.experiments.spec import CONFIG_COLUMNS


def _fake_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    rows = [{"metric": m, "class": c, "model": model, "value": v}
            for m in ("accuracy", "auroc") for model, v in (("image", 0.5), ("fused", 0.6))
            for c in ("A", "B", "macro_mean", "macro_std")]
    pd.DataFrame(rows).to_parquet(run_dir / "metrics.parquet")
    pd.DataFrame({"class": ["A", "B"], "auc_image": [0.5, 0.5], "auc_fused": [0.6, 0.6],
                  "diff": [0.1, 0.1], "p_value": [0.07, 0.2],
                  "stars": ["*", ""]}).to_parquet(run_dir / "significance.parquet")


def test_results_table_adds_configuration_and_p_values(tmp_path: Path) -> None:
    _fake_run(tmp_path / "r")
    cols = {"grid": "g", "config_id": "ptbxl-x", "dataset": "ptbxl", "backbone": "x",
            "weights": "imagenet", "mode": "bn", "augment": False, "epochs": 0, "seed": 0,
            "encoding": "paper"}
    df = results_table(tmp_path / "r", cols)
    assert list(df.columns) == [*CONFIG_COLUMNS, "encoding",
                                *RESULT_COLUMNS[len(CONFIG_COLUMNS):]]
    assert list(df.columns[-len(RUN_COLUMNS):]) == list(RUN_COLUMNS)
    assert df[list(RUN_COLUMNS[1:])].isna().all().all()  # a run without the files: NaN
    assert df["training"].isna().all()
    assert len(df) == 16 and (df["config_id"] == "ptbxl-x").all()
    assert (df["with_metadata"] == df["model"].eq("fused")).all()
    sig = df[df["p_value"].notna()]
    assert sorted(zip(sig["class"], sig["p_value"], sig["stars"], strict=True)) == [
        ("A", 0.07, "*"), ("B", 0.2, "")]
    assert set(sig["metric"]) == {"auroc"} and set(sig["model"]) == {"fused"}


def test_results_table_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.parquet"):
        results_table(tmp_path, {})
    pd.DataFrame({"metric": ["a"], "value": [1.0]}).to_parquet(tmp_path / "metrics.parquet")
    with pytest.raises(ValueError, match="class, model"):
        results_table(tmp_path, {})


def test_collect_without_complete_runs_has_the_documented_columns(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "status.json").write_text(json.dumps({"state": "failed"}))
    seen: list[str] = []
    df = collect(tmp_path, tmp_path / "out.parquet", warn=seen.append)
    assert list(df.columns) == list(RESULT_COLUMNS) and df.empty
    assert list(pd.read_parquet(tmp_path / "out.parquet").columns) == list(RESULT_COLUMNS)
    assert seen == ["a: failed, not collected"]
    with pytest.raises(FileNotFoundError, match="run a grid first"):
        collect(tmp_path / "missing")


def test_load_results_explains_a_missing_table(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="experiments collect <runs-dir>"):
        load_results(tmp_path / "nope.parquet")
    table = pd.DataFrame({"config_id": ["a", "b"], "value": [0.5, 0.6]})
    table.to_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(load_results(tmp_path / "r.parquet"), table)


def _weights(coef: np.ndarray, names: list[str]):
    from fusion_utils.interpret.weights import ClassifierWeights

    return ClassifierWeights(coef=np.asarray(coef, float), intercept=np.zeros(len(coef)),
                             feature_names=np.array(names), classes=np.array(["A", "B"]))


def _full_run(run_dir: Path, *, scale_fused: float, fit_fused: float = 4.0,
              feature_timings: bool = True) -> None:
    """A run folder with metrics, timings, feature timings, run.json and both classifiers."""
    from fusion_utils.run_folder import RunFolder

    _fake_run(run_dir)
    run = RunFolder(run_dir)
    run.write_timings({"extraction": 99.0, "finetune": 0.0, "fit_image": 2.0,
                       "fit_fused": fit_fused, "training": "paper"})
    if feature_timings:
        run.write_feature_timings({"extraction_s": 300.0, "fine_tuning_s": 50.0})
    run.record("fusion", {"training": "paper", "solver": "trainscg"})
    img = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])  # median |w| 3.5
    run.write_classifier("image", _weights(img, ["img.0", "img.1", "img.2"]))
    fused = np.hstack([img * scale_fused, [[70.0], [-70.0]]])
    run.write_classifier("fused", _weights(fused, ["img.0", "img.1", "img.2", "age"]))


def test_run_columns_known_values(tmp_path: Path) -> None:
    _full_run(tmp_path / "r", scale_fused=0.01)
    got = run_columns(tmp_path / "r")
    assert got == {"training": "paper", "fit_seconds_image": 2.0, "fit_seconds_fused": 4.0,
                   "extraction_seconds": 300.0, "finetune_seconds": 50.0,
                   "image_weight_ratio": pytest.approx(100.0)}
    # without feature_timings.json the extraction comes from timings.json
    _full_run(tmp_path / "s", scale_fused=0.5, feature_timings=False)
    got = run_columns(tmp_path / "s")
    assert got["extraction_seconds"] == 99.0 and got["finetune_seconds"] == 0.0
    assert got["image_weight_ratio"] == pytest.approx(2.0)
    # an empty folder, a damaged timings file, one classifier missing: NaN, not errors
    (tmp_path / "e").mkdir()
    empty = run_columns(tmp_path / "e")
    assert empty["training"] is None
    assert all(np.isnan(empty[c]) for c in RUN_COLUMNS[1:])
    (tmp_path / "s" / "timings.json").write_text("{not json")
    (tmp_path / "s" / "classifier_fused.npz").unlink()
    broken = run_columns(tmp_path / "s")
    assert np.isnan(broken["fit_seconds_fused"]) and np.isnan(broken["image_weight_ratio"])


def test_run_columns_read_an_older_run_s_solver(tmp_path: Path) -> None:
    from fusion_utils.run_folder import RunFolder

    (tmp_path / "r").mkdir()
    RunFolder(tmp_path / "r").record("fusion", {"solver": "lbfgs", "l2": 0.0})
    assert run_columns(tmp_path / "r")["training"] == "converged"


def _done(run_dir: Path, columns: dict) -> None:
    from fusion_utils.run_folder import RunFolder

    run = RunFolder(run_dir)
    run.write_status({"state": "done"})
    table = results_table(run_dir, columns)
    run.write_results(table)


def test_collect_and_add_run_columns_fill_tables_that_predate_them(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cols = {"grid": "g", "dataset": "ptbxl", "backbone": "x", "weights": "imagenet",
            "mode": "bn", "augment": False, "epochs": 0, "seed": 0}
    _full_run(runs / "a", scale_fused=0.01)
    _done(runs / "a", {**cols, "config_id": "a"})
    _full_run(runs / "b", scale_fused=1.0, fit_fused=8.0)
    _done(runs / "b", {**cols, "config_id": "b"})
    # b was collected before the run columns existed
    old = pd.read_parquet(runs / "b" / "results.parquet").drop(columns=list(RUN_COLUMNS))
    old.to_parquet(runs / "b" / "results.parquet")
    df = collect(runs)
    assert list(df.columns) == list(RESULT_COLUMNS)
    per = df.groupby("config_id")[list(RUN_COLUMNS)].first()
    assert per.loc["a", "image_weight_ratio"] == pytest.approx(100.0)
    assert per.loc["b", "image_weight_ratio"] == pytest.approx(1.0)
    assert per["fit_seconds_fused"].tolist() == [4.0, 8.0]
    assert per["training"].tolist() == ["paper", "paper"]
    # a committed table without the columns, re-derived from the run folders (CLI, in place)
    table = tmp_path / "results.parquet"
    df.drop(columns=list(RUN_COLUMNS)).to_parquet(table)
    assert main(["add-run-columns", str(table), str(runs)]) == 0
    again = pd.read_parquet(table)
    pd.testing.assert_frame_equal(again, df, check_dtype=False)
    # a configuration whose folder is gone: NaN columns
    gone = add_run_columns(df.assign(config_id="zzz"), runs)
    assert gone[list(RUN_COLUMNS[1:])].isna().all().all()
    with pytest.raises(ValueError, match="config_id"):
        add_run_columns(pd.DataFrame({"x": [1]}), runs)
