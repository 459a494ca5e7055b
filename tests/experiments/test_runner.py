"""Tests of fusion_utils.experiments.runner: layout, preflight, submission order, runs on Dask.

The end-to-end tests run a two-configuration grid of tiny dummy notebooks
(tests/fixtures/grid_notebooks/) through the runner, then the command line, status and collect."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from fusion_utils.experiments.cli import main
from fusion_utils.experiments.results import RESULT_COLUMNS, collect, grid_status, read_status
from fusion_utils.experiments.runner import (
    _finished_stages,
    _interleave,
    _task,
    choose_layout,
    run_configuration,
    run_grid,
)
from fusion_utils.experiments.spec import load_grid
from tests.experiments.grid_helpers import dummy_spec, write_spec


def test_choose_layout() -> None:
    assert choose_layout(1) == (1, 1)
    assert choose_layout(2) == (2, 1)
    assert choose_layout(8) == (4, 2)
    assert choose_layout(16) == (4, 4)
    assert choose_layout(64) == (8, 8)


def test_missing_manifest_fails_before_running(tmp_path: Path) -> None:
    spec = dummy_spec(ptbxl={"manifest": str(tmp_path / "nope.parquet")})
    summary = run_grid(write_spec(tmp_path, spec), runs_dir=tmp_path / "runs", echo=None)
    assert summary["state"].tolist() == ["failed"]
    status = read_status(tmp_path / "runs" / "ptbxl-ft-aug")
    assert status["state"] == "failed" and "nope.parquet not found" in status["error"]
    assert "notebook 01" in status["error"]


def test_submission_alternates_datasets() -> None:
    spec = {"datasets": {"ptbxl": {}, "ham10000": {}}, "axes": {"mode": ["bn", "ft"],
                                                                "augment": [False, True]}}
    g = load_grid(spec, resolve_notebooks=False)
    order = [c.config_id for c, _ in _interleave([(c, {}) for c in g.configurations])]
    assert order == ["ptbxl-bn-noaug", "ham10000-bn-noaug", "ptbxl-bn-aug", "ham10000-bn-aug",
                     "ptbxl-ft-noaug", "ham10000-ft-noaug", "ptbxl-ft-aug", "ham10000-ft-aug"]


@pytest.mark.slow
def test_grid_runs_on_a_local_cluster_then_skips_and_collects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, dummy_spec())
    runs = tmp_path / "runs"
    summary = run_grid(path, runs_dir=runs, workers=2, threads_per_worker=1, poll=0.5)
    out = capsys.readouterr().out
    assert summary["state"].tolist() == ["done", "done"]
    assert "LocalCluster 2 worker process(es) x 1 thread(s)" in out and "dashboard" in out
    assert "[2/2]" in out
    for cid in ("ptbxl-ft-aug", "ham10000-ft-aug"):
        status = read_status(runs / cid)
        assert status["state"] == "done" and status["n_results"] == 16
        assert set(status["stages"]) == {"dummy_features", "dummy_evaluation"}
        assert (runs / cid / "dummy_evaluation.ipynb").is_file()
        info = json.loads((runs / cid / "features.json").read_text())
        assert info["dataset"] == cid.split("-")[0] and info["omp_threads"] == "1"
    before = {cid: (runs / cid / "status.json").read_text() for cid in ("ptbxl-ft-aug",
                                                                         "ham10000-ft-aug")}

    code = main(["run", str(path), "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0 and "2 already done, 0 to run" in out and "[grid] 2 skipped" in out
    assert before == {cid: (runs / cid / "status.json").read_text() for cid in before}

    assert main(["collect", str(runs), "-o", str(tmp_path / "all.parquet")]) == 0
    df = pd.read_parquet(tmp_path / "all.parquet")
    assert list(df.columns) == list(RESULT_COLUMNS) and len(df) == 32
    macro = df[df["class"].eq("macro_mean")].pivot_table(
        index=["config_id", "metric"], columns="model", values="value")
    # the dummy's known answer: ft -> image 0.7; fused = image + 0.05 + 0.02 (augmentation)
    assert macro["image"].to_numpy() == pytest.approx([0.7] * 4)
    assert (macro["fused"] - macro["image"]).to_numpy() == pytest.approx([0.07] * 4)

    status = grid_status(runs)
    assert sorted(status["state"]) == ["done", "done"]


@pytest.mark.slow
def test_failed_configuration_is_reported_on_an_existing_scheduler(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import LocalCluster

    path = write_spec(tmp_path, dummy_spec(ptbxl={}, ham10000={"fail": True}))
    runs = tmp_path / "runs"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit=0) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        code = main(["run", str(path), "--runs-dir", str(runs), "--scheduler", address])
    out = capsys.readouterr().out
    assert code == 1
    assert f"scheduler {address} (2 worker(s))" in out
    assert "FAILED ham10000-ft-aug: dummy_features: RuntimeError: dummy failure requested for " \
           "ham10000" in out
    failed = read_status(runs / "ham10000-ft-aug")
    assert failed["state"] == "failed" and failed["stage"] == "dummy_features"
    assert "RuntimeError" in failed["traceback"] and "dummy failure" in failed["detail"]
    assert (runs / "ham10000-ft-aug" / "dummy_features.failed.ipynb").is_file()
    assert read_status(runs / "ptbxl-ft-aug")["state"] == "done"
    # on an existing cluster a run gets its worker's cores over the worker's task slots (1 here)
    info = json.loads((runs / "ptbxl-ft-aug" / "features.json").read_text())
    assert info["omp_threads"] == str(len(os.sched_getaffinity(0)))

    df = collect(runs)
    assert set(df["config_id"]) == {"ptbxl-ft-aug"}
    table = grid_status(runs)
    assert dict(zip(table["config_id"], table["state"], strict=True)) == {
        "ham10000-ft-aug": "failed", "ptbxl-ft-aug": "done"}


def test_a_failed_configuration_resumes_at_its_failed_stage(tmp_path: Path) -> None:
    """A configuration that failed in its last notebook (chapter 05 after a GPU fine-tuning,
    say) runs only that notebook again; a changed configuration, or a missing executed
    notebook, runs everything."""
    path = write_spec(tmp_path, dummy_spec(ptbxl={}))
    grid = load_grid(path)
    cfg = grid.configurations[0]
    run_dir = tmp_path / "runs" / cfg.config_id
    task = _task(grid, cfg, run_dir, threads=1)
    assert run_configuration(task)["state"] == "done"

    def fail_in_stage_two(config_hash: str) -> None:
        """The state a failure in dummy_evaluation on another machine leaves behind."""
        (run_dir / "metrics.parquet").unlink()
        info = json.loads((run_dir / "features.json").read_text())
        (run_dir / "features.json").write_text(json.dumps({**info, "marker": "stage 1 kept"}))
        (run_dir / "status.json").write_text(json.dumps({
            "config_id": cfg.config_id, "config_hash": config_hash, "state": "failed",
            "stage": "dummy_evaluation", "stages": {"dummy_features": 1.25},
            "host": "gpu-box", "finished": "2026-11-27T19:40:00+0000"}))

    fail_in_stage_two(task["config_hash"])
    status = run_configuration(task)
    assert status["state"] == "done"
    assert json.loads((run_dir / "features.json").read_text())["marker"] == "stage 1 kept"
    assert (run_dir / "metrics.parquet").is_file()
    assert status["stages"]["dummy_features"] == 1.25
    assert status["resumed"]["dummy_features"]["host"] == "gpu-box"
    assert set(status["stages"]) == {"dummy_features", "dummy_evaluation"}

    fail_in_stage_two("another-hash")  # the configuration changed: stage 1 runs again
    status = run_configuration(task)
    assert status["state"] == "done" and "resumed" not in status
    assert "marker" not in json.loads((run_dir / "features.json").read_text())

    fail_in_stage_two(task["config_hash"])  # stage 1's executed notebook is gone: runs again
    (run_dir / "dummy_features.ipynb").unlink()
    status = run_configuration(task)
    assert "resumed" not in status
    assert "marker" not in json.loads((run_dir / "features.json").read_text())


def test_the_queue_marker_keeps_a_failure_to_resume_from(tmp_path: Path) -> None:
    """run_grid overwrites status.json with a 'pending' marker before submitting; the marker
    keeps the failure (``after_failure``), so the stages it finished are still resumed."""
    task = {"config_hash": "h", "stages": [["a/s1.py", {}], ["a/s2.py", {}], ["a/s3.py", {}]]}
    (tmp_path / "s1.ipynb").write_text("{}")
    (tmp_path / "s2.ipynb").write_text("{}")
    failed = {"config_hash": "h", "state": "failed", "stages": {"s1": 3.0, "s2": 4.0},
              "host": "gpu", "finished": "t"}
    assert list(_finished_stages(failed, tmp_path, task)) == ["s1", "s2"]
    marker = {"config_hash": "h", "state": "pending", "after_failure": {
        k: failed[k] for k in ("stages", "host", "finished")}}
    assert _finished_stages(marker, tmp_path, task) == _finished_stages(failed, tmp_path, task)
    assert _finished_stages({**marker, "after_failure": None}, tmp_path, task) == {}
    assert _finished_stages({**failed, "state": "done"}, tmp_path, task) == {}
    (tmp_path / "s1.ipynb").unlink()  # only a leading run of finished stages counts
    assert _finished_stages(failed, tmp_path, task) == {}


def test_from_stage_reruns_done_configurations_from_that_notebook(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--from-stage``: a completed configuration re-runs its later notebooks and keeps the
    earlier ones' outputs (refit the classifiers without extracting the features again)."""
    path = write_spec(tmp_path, dummy_spec(ptbxl={}))
    runs = tmp_path / "runs"
    assert run_grid(path, runs_dir=runs, workers=1, threads_per_worker=1,
                    poll=0.5)["state"].tolist() == ["done"]
    run_dir = runs / "ptbxl-ft-aug"
    info = json.loads((run_dir / "features.json").read_text())
    (run_dir / "features.json").write_text(json.dumps({**info, "marker": "stage 1 kept"}))
    (run_dir / "metrics.parquet").unlink()
    first = read_status(run_dir)

    with pytest.raises(ValueError, match="from_stage='04_fusion' is not a notebook of grid "
                                         "'dummy': choose one of dummy_features, dummy_eval"):
        run_grid(path, runs_dir=runs, from_stage="04_fusion")
    code = main(["run", str(path), "--runs-dir", str(runs), "--workers", "1",
                 "--threads-per-worker", "1", "--from-stage", "dummy_evaluation"])
    assert code == 0 and "0 already done, 1 to run" in capsys.readouterr().out
    status = read_status(run_dir)
    assert status["state"] == "done" and status["finished"] != first["finished"]
    assert status["resumed"]["dummy_features"]["seconds"] == first["stages"]["dummy_features"]
    assert json.loads((run_dir / "features.json").read_text())["marker"] == "stage 1 kept"
    assert (run_dir / "metrics.parquet").is_file()  # stage 2 ran again

    # from the first notebook: everything runs again
    run_grid(path, runs_dir=runs, workers=1, threads_per_worker=1, poll=0.5,
             from_stage="dummy_features")
    assert "marker" not in json.loads((run_dir / "features.json").read_text())
    assert "resumed" not in read_status(run_dir)


def test_finished_stages_of_a_done_configuration_only_with_from_stage(tmp_path: Path) -> None:
    task = {"config_hash": "h", "stages": [["a/s1.py", {}], ["a/s2.py", {}], ["a/s3.py", {}]]}
    for stem in ("s1", "s2", "s3"):
        (tmp_path / f"{stem}.ipynb").write_text("{}")
    done = {"config_hash": "h", "state": "done", "stages": {"s1": 3.0, "s2": 4.0, "s3": 1.0},
            "host": "gpu", "finished": "t"}
    assert _finished_stages(done, tmp_path, task) == {}
    assert list(_finished_stages(done, tmp_path, {**task, "from_stage": "s3"})) == ["s1", "s2"]
    assert list(_finished_stages(done, tmp_path, {**task, "from_stage": "s2"})) == ["s1"]
    assert _finished_stages(done, tmp_path, {**task, "from_stage": "s1"}) == {}
    assert _finished_stages({**done, "config_hash": "x"}, tmp_path,
                            {**task, "from_stage": "s3"}) == {}
