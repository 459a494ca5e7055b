"""Tests of fusion_utils.experiments.results: per-run results tables and collect."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fusion_utils.experiments.results import RESULT_COLUMNS, collect, load_results, results_table
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
