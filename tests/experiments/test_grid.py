"""Tests of fusion_utils.experiments.grid: grid files, routing, the runner on Dask, status and collect.

The end-to-end tests run a two-configuration grid of tiny dummy notebooks
(tests/fixtures/grid_notebooks/) that write notebook 05's output formats in a second, so they test
the runner, not the science.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fusion_utils.experiments import grid
from fusion_utils.paths import project_root

ROOT = project_root(Path(__file__).parent)
NOTEBOOKS = Path(__file__).parents[1] / "fixtures" / "grid_notebooks"
PAPER_BACKBONES = ("alexnet", "mobilenet_v2", "densenet201", "resnet50", "inception_resnet_v2",
                   "vgg16", "vgg19", "googlenet")


def dummy_spec(**datasets: dict) -> dict:
    """A grid of the dummy notebooks: one configuration per dataset (ft, augmentation on)."""
    return {
        "name": "dummy",
        "notebooks": [str(NOTEBOOKS / "dummy_features.py"), str(NOTEBOOKS / "dummy_evaluation.py")],
        "cell_timeout": 120,
        "defaults": {"backbone": "tiny", "seed": 0},
        "datasets": datasets or {"ptbxl": {}, "ham10000": {}},
        "axes": {"mode": ["ft"], "augment": [True]},
    }


def write_spec(tmp_path: Path, spec: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- grid files


def test_config_id_known_answers() -> None:
    assert grid.config_id("ptbxl", {"backbone": "efficientnet_lite0", "mode": "bn",
                                    "augment": False}) == "ptbxl-efficientnet_lite0-bn-noaug"
    assert grid.config_id("ham10000", {"backbone": "vgg19", "mode": "ft",
                                       "augment": True}) == "ham10000-vgg19-ft-aug"
    assert grid.config_id("ptbxl", {"standardize": True, "l2": 0.01,
                                    "weights": "/w/x y.pt"}) == "ptbxl-standardize-0.01-_w_x_y.pt"


def test_merge_order_defaults_dataset_axes_rules() -> None:
    spec = {
        "name": "m",
        "defaults": {"epochs": 5, "batch_size": 8, "seed": 1},
        "datasets": {"PTB-XL": {"batch_size": 64}, "ham10000": {"seed": 2}},
        "axes": {"mode": ["bn", "ft"], "epochs": [3]},
        "rules": [{"when": {"mode": "bn"}, "set": {"epochs": 0}},
                  {"when": {"dataset": "ham10000", "mode": "ft"}, "set": {"batch_size": 128}}],
    }
    g = grid.load_grid(spec, resolve_notebooks=False)
    by_id = {c.config_id: c.parameters for c in g.configurations}
    assert list(by_id) == ["ptbxl-bn-3", "ptbxl-ft-3", "ham10000-bn-3", "ham10000-ft-3"]
    assert by_id["ptbxl-bn-3"] == {"epochs": 0, "batch_size": 64, "seed": 1, "mode": "bn"}
    assert by_id["ptbxl-ft-3"] == {"epochs": 3, "batch_size": 64, "seed": 1, "mode": "ft"}
    assert by_id["ham10000-ft-3"] == {"epochs": 3, "batch_size": 128, "seed": 2, "mode": "ft"}
    assert g.select("*-ft-*") == [c for c in g.configurations if c.axes["mode"] == "ft"]
    assert [c.config_id for c in g.select("ptbxl-bn-3, ham*-bn-*")] == ["ptbxl-bn-3",
                                                                       "ham10000-bn-3"]
    with pytest.raises(ValueError, match="matches no configuration"):
        g.select("nothing-*")


@pytest.mark.parametrize(("spec", "message"), [
    ({"datasets": {"ptbxl": {}}, "axis": {}}, "unknown key"),
    ({"datasets": {}}, "at least one"),
    ({"datasets": {"mnist": {}}}, "unknown dataset"),
    ({"datasets": {"ptbxl": {}}, "axes": {"mode": "bn"}}, "non-empty list"),
    ({"datasets": {"ptbxl": {}}, "axes": {"dataset": ["ptbxl"]}}, "not an axis"),
    ({"datasets": {"ptbxl": {}}, "rules": [{"when": {}}]}, "when' and 'set"),
    ({"datasets": {"ptbxl": {}}, "axes": {"a": ["x y", "x_y"]}}, "both have id"),
])
def test_invalid_grid_files_name_the_problem(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid.load_grid(spec, resolve_notebooks=False)


def test_paper_grid_is_the_papers_64_configurations() -> None:
    g = grid.load_grid(ROOT / "experiments" / "paper.yaml", resolve_notebooks=False)
    assert g.name == "paper" and len(g) == 2 * 8 * 2 * 2 == 64
    ids = [c.config_id for c in g.configurations]
    assert len(set(ids)) == 64
    assert {c.axes["backbone"] for c in g.configurations} == set(PAPER_BACKBONES)
    assert "ptbxl-inception_resnet_v2-ft-aug" in ids and "ham10000-alexnet-bn-noaug" in ids
    batch = {c.dataset: c.parameters["batch_size"] for c in g.configurations}
    assert batch == {"ham10000": 128, "ptbxl": 64}
    assert all(c.parameters["device"] == "auto" for c in g.configurations)


def test_book_grid_is_eight_offline_configurations() -> None:
    g = grid.load_grid(ROOT / "experiments" / "book.yaml", resolve_notebooks=False)
    assert g.name == "book" and len(g) == 8
    assert {c.config_id for c in g.configurations} == {
        f"{d}-efficientnet_lite0-{m}-{a}" for d in ("ptbxl", "ham10000")
        for m in ("bn", "ft") for a in ("aug", "noaug")}
    assert all(c.parameters["weights"] == "imagenet" for c in g.configurations)
    assert max(c.parameters["epochs"] for c in g.configurations) <= 3


@pytest.mark.parametrize("name", ["book.yaml", "paper.yaml"])
def test_project_grids_route_to_the_real_notebooks(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = [n for n in grid.DEFAULT_NOTEBOOKS if not (ROOT / "notebooks" / f"{n}.py").is_file()]
    if missing:
        pytest.skip(f"notebook(s) {', '.join(missing)} not written yet")
    code = grid.main(["run", str(ROOT / "experiments" / name), "--dry-run",
                      "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    n = 8 if name == "book.yaml" else 64
    assert code == 0 and f"[grid] {n} planned" in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_routing_gives_each_notebook_only_its_parameters(tmp_path: Path) -> None:
    g = grid.load_grid(write_spec(tmp_path, dummy_spec(ptbxl={"fail": True})))
    (cfg,) = g.configurations
    routed = dict(g.notebook_parameters(cfg, tmp_path / "run"))
    features = routed[NOTEBOOKS / "dummy_features.py"]
    evaluation = routed[NOTEBOOKS / "dummy_evaluation.py"]
    assert features == {"backbone": "tiny", "seed": 0, "fail": True, "mode": "ft",
                        "augment": True, "dataset": "ptbxl", "run_dir": str(tmp_path / "run")}
    assert evaluation == {"seed": 0, "dataset": "ptbxl", "run_dir": str(tmp_path / "run"),
                          "config_label": "ptbxl-ft-aug"}


def test_unknown_parameter_is_named_with_what_notebooks_declare(tmp_path: Path) -> None:
    spec = dummy_spec(ptbxl={"learning_rate": 0.1})
    g = grid.load_grid(write_spec(tmp_path, spec))
    with pytest.raises(ValueError, match=r"learning_rate.*dummy_features: augment, backbone"):
        g.notebook_parameters(g.configurations[0], tmp_path)


def test_config_hash_follows_parameters_not_run_folder(tmp_path: Path) -> None:
    a = grid.load_grid(write_spec(tmp_path, dummy_spec(ptbxl={})))
    b = grid.load_grid(write_spec(tmp_path, dummy_spec(ptbxl={"seed": 1}), "b.yaml"))
    assert a.config_hash(a.configurations[0]) == a.config_hash(a.configurations[0])
    assert a.config_hash(a.configurations[0]) != b.config_hash(b.configurations[0])


def test_choose_layout() -> None:
    assert grid.choose_layout(1) == (1, 1)
    assert grid.choose_layout(2) == (2, 1)
    assert grid.choose_layout(8) == (4, 2)
    assert grid.choose_layout(16) == (4, 4)
    assert grid.choose_layout(64) == (8, 8)


def test_missing_manifest_fails_before_running(tmp_path: Path) -> None:
    spec = dummy_spec(ptbxl={"manifest": str(tmp_path / "nope.parquet")})
    summary = grid.run_grid(write_spec(tmp_path, spec), runs_dir=tmp_path / "runs", echo=None)
    assert summary["state"].tolist() == ["failed"]
    status = grid.read_status(tmp_path / "runs" / "ptbxl-ft-aug")
    assert status["state"] == "failed" and "nope.parquet not found" in status["error"]
    assert "notebook 01" in status["error"]


# ----------------------------------------------------------------------------- results tables


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
    df = grid.results_table(tmp_path / "r", cols)
    assert list(df.columns) == [*grid.CONFIG_COLUMNS, "encoding",
                                *grid.RESULT_COLUMNS[len(grid.CONFIG_COLUMNS):]]
    assert len(df) == 16 and (df["config_id"] == "ptbxl-x").all()
    assert (df["with_metadata"] == df["model"].eq("fused")).all()
    sig = df[df["p_value"].notna()]
    assert sorted(zip(sig["class"], sig["p_value"], sig["stars"], strict=True)) == [
        ("A", 0.07, "*"), ("B", 0.2, "")]
    assert set(sig["metric"]) == {"auroc"} and set(sig["model"]) == {"fused"}


def test_results_table_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.parquet"):
        grid.results_table(tmp_path, {})
    pd.DataFrame({"metric": ["a"], "value": [1.0]}).to_parquet(tmp_path / "metrics.parquet")
    with pytest.raises(ValueError, match="class, model"):
        grid.results_table(tmp_path, {})


def test_collect_without_complete_runs_has_the_documented_columns(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "status.json").write_text(json.dumps({"state": "failed"}))
    seen: list[str] = []
    df = grid.collect(tmp_path, tmp_path / "out.parquet", warn=seen.append)
    assert list(df.columns) == list(grid.RESULT_COLUMNS) and df.empty
    assert list(pd.read_parquet(tmp_path / "out.parquet").columns) == list(grid.RESULT_COLUMNS)
    assert seen == ["a: failed, not collected"]
    with pytest.raises(FileNotFoundError, match="run a grid first"):
        grid.collect(tmp_path / "missing")


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_grid_runs_on_a_local_cluster_then_skips_and_collects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, dummy_spec())
    runs = tmp_path / "runs"
    summary = grid.run_grid(path, runs_dir=runs, workers=2, threads_per_worker=1, poll=0.5)
    out = capsys.readouterr().out
    assert summary["state"].tolist() == ["done", "done"]
    assert "LocalCluster 2 worker process(es) x 1 thread(s)" in out and "dashboard" in out
    assert "[2/2]" in out
    for cid in ("ptbxl-ft-aug", "ham10000-ft-aug"):
        status = grid.read_status(runs / cid)
        assert status["state"] == "done" and status["n_results"] == 16
        assert set(status["stages"]) == {"dummy_features", "dummy_evaluation"}
        assert (runs / cid / "dummy_evaluation.ipynb").is_file()
        info = json.loads((runs / cid / "features.json").read_text())
        assert info["dataset"] == cid.split("-")[0] and info["omp_threads"] == "1"
    before = {cid: (runs / cid / "status.json").read_text() for cid in ("ptbxl-ft-aug",
                                                                         "ham10000-ft-aug")}

    code = grid.main(["run", str(path), "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0 and "2 already done, 0 to run" in out and "[grid] 2 skipped" in out
    assert before == {cid: (runs / cid / "status.json").read_text() for cid in before}

    assert grid.main(["collect", str(runs), "-o", str(tmp_path / "all.parquet")]) == 0
    df = pd.read_parquet(tmp_path / "all.parquet")
    assert list(df.columns) == list(grid.RESULT_COLUMNS) and len(df) == 32
    macro = df[df["class"].eq("macro_mean")].pivot_table(
        index=["config_id", "metric"], columns="model", values="value")
    # the dummy's known answer: ft -> image 0.7; fused = image + 0.05 + 0.02 (augmentation)
    assert macro["image"].to_numpy() == pytest.approx([0.7] * 4)
    assert (macro["fused"] - macro["image"]).to_numpy() == pytest.approx([0.07] * 4)

    status = grid.grid_status(runs)
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
        code = grid.main(["run", str(path), "--runs-dir", str(runs), "--scheduler", address])
    out = capsys.readouterr().out
    assert code == 1
    assert f"scheduler {address} (2 worker(s))" in out
    assert "FAILED ham10000-ft-aug: dummy_features: RuntimeError: dummy failure requested for " \
           "ham10000" in out
    failed = grid.read_status(runs / "ham10000-ft-aug")
    assert failed["state"] == "failed" and failed["stage"] == "dummy_features"
    assert "RuntimeError" in failed["traceback"] and "dummy failure" in failed["detail"]
    assert (runs / "ham10000-ft-aug" / "dummy_features.failed.ipynb").is_file()
    assert grid.read_status(runs / "ptbxl-ft-aug")["state"] == "done"
    # on an existing cluster a run gets its worker's cores over the worker's task slots (1 here)
    info = json.loads((runs / "ptbxl-ft-aug" / "features.json").read_text())
    assert info["omp_threads"] == str(len(os.sched_getaffinity(0)))

    df = grid.collect(runs)
    assert set(df["config_id"]) == {"ptbxl-ft-aug"}
    table = grid.grid_status(runs)
    assert dict(zip(table["config_id"], table["state"], strict=True)) == {
        "ham10000-ft-aug": "failed", "ptbxl-ft-aug": "done"}


def test_submission_alternates_datasets() -> None:
    spec = {"datasets": {"ptbxl": {}, "ham10000": {}}, "axes": {"mode": ["bn", "ft"],
                                                                "augment": [False, True]}}
    g = grid.load_grid(spec, resolve_notebooks=False)
    order = [c.config_id for c, _ in grid._interleave([(c, {}) for c in g.configurations])]
    assert order == ["ptbxl-bn-noaug", "ham10000-bn-noaug", "ptbxl-bn-aug", "ham10000-bn-aug",
                     "ptbxl-ft-noaug", "ham10000-ft-noaug", "ptbxl-ft-aug", "ham10000-ft-aug"]
