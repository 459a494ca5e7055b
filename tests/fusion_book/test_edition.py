"""Editions of the book: chapter plan per edition, banner, configuration, stage-time table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fusion_book import build, edition
from fusion_utils.notebook_runner import check_parameter_types, notebook_parameters


def _toc_files(root: Path) -> set[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = set()
    for part in toc["parts"]:
        for ch in part["chapters"]:
            if ch["file"].startswith("book/executed/"):
                files.add(ch["file"].removeprefix("book/executed/"))
    return files


@pytest.mark.parametrize("real", [None, Path("/data/real")])
def test_each_edition_fills_every_executed_toc_entry_with_valid_parameters(real) -> None:
    from fusion_utils.paths import project_root

    chapters = build._chapters(real)
    outputs = {c.output for c in chapters if c.notebook != "<grid>"}
    grid_outputs = {f"{stem}_{d}" for stem in ("03_feature_extraction", "04_fusion",
                                                "05_evaluation") for d in ("ptbxl", "ham10000")}
    toc = _toc_files(project_root()) - {"runtimes"}  # the run-time page is written, not run
    assert outputs | grid_outputs == toc
    for ch in chapters:
        if ch.notebook != "<grid>":  # names and types as papermill would inject them
            check_parameter_types(notebook_parameters(ch.notebook), ch.parameters, ch.output)


def test_real_edition_runs_every_chapter_on_the_real_data() -> None:
    real = Path("/data/real")
    params = {c.output: c.parameters for c in build._chapters(real)}
    assert params["01_data_preparation_ham10000"]["image_dir"] == "images_200x150"
    assert params["01_data_preparation_ham10000"]["data_dir"] == "/data/real/ham10000"
    assert {params[k]["split_scheme"] for k in params if k.startswith("01_")} == {"group"}
    assert params["02_scalograms"]["data_dir"] == "/data/real/ptbxl"
    assert params["07_metadata_only_ptbxl"]["data_dir"] == "/data/real/ptbxl"
    assert params["08_results"]["results_path"].endswith("results/real/results.parquet")
    assert params["06_interpretability"]["run_dirs"].endswith(
        "real_book/ptbxl-efficientnet_lite0-bn-noaug")
    demo = {c.output: c.parameters for c in build._chapters(None)}
    assert "data_dir" not in demo["07_metadata_only_ptbxl"]
    assert demo["08_results"] == {}


def test_banner_names_the_edition() -> None:
    assert edition.banner(None).startswith("Demo edition") and "synthetic" in edition.banner(None)
    text = edition.banner(Path("/x"))
    assert text.startswith("Real edition") and "10,015" in text and "1,533" in text
    assert edition.edition_name(None) == "demo" and edition.edition_name(Path("/x")) == "real"


def test_edition_config_sets_the_banner_and_absolute_extension_paths(tmp_path) -> None:
    (tmp_path / "_config.yml").write_text(
        "title: t\nhtml:\n  home_page_in_navbar: true\n"
        "sphinx:\n  local_extensions:\n    book_assets: book/_ext\n")
    out = edition.write_edition_config(tmp_path, tmp_path / "_build" / "_config.yml", "Hello")
    config = yaml.safe_load(out.read_text())
    assert config["html"] == {"home_page_in_navbar": True, "announcement": "Hello"}
    assert config["sphinx"]["local_extensions"]["book_assets"] == str(
        (tmp_path / "book" / "_ext").resolve())
    assert config["title"] == "t"


def test_stage_timer_table_sums_the_stages(monkeypatch) -> None:
    clock = iter([0.0, 30.0, 30.0, 120.0])
    monkeypatch.setattr(edition.time, "perf_counter", lambda: next(clock))
    timer = edition.StageTimer()
    with timer.stage("a"):
        pass
    with pytest.raises(RuntimeError), timer.stage("b"):
        raise RuntimeError
    assert timer.stages == [("a", 30.0), ("b", 90.0)]
    lines = timer.table().splitlines()
    assert lines[0].split() == ["stage", "seconds", "minutes", "share", "peak", "GiB"]
    assert lines[1].split()[:4] == ["a", "30.0", "0.50", "25.0%"]
    assert lines[-1].split()[:4] == ["total", "120.0", "2.00", "100.0%"]
    assert float(lines[-1].split()[4]) == pytest.approx(timer.peak_bytes / 2**30, abs=0.01)


def test_stage_timer_records_the_peak_memory_of_the_stage() -> None:
    """A stage whose child process holds 400 MiB peaks that much above an idle stage (a child:
    this process may reuse memory it already holds, see fusion_utils.allocator)."""
    import subprocess
    import sys
    import time

    code = ("import numpy as np, time; a = np.ones(400 * 2**20 // 8); print(1, flush=True); "
            "time.sleep(0.5)")
    timer = edition.StageTimer(interval=0.05)
    with timer.stage("small"):
        time.sleep(0.3)
    with timer.stage("big"):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "1"
        child.wait()
    small, big = timer.peaks
    assert big - small > 350 * 2**20
    assert timer.peak_bytes == big


def test_tree_rss_counts_the_child_processes() -> None:
    import subprocess
    import sys
    import time

    before = edition.tree_rss()
    code = ("import numpy as np, time; a = np.ones(300 * 2**20 // 8); print(1, flush=True); "
            "time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "1"
        time.sleep(0.1)
        assert edition.tree_rss() - before > 280 * 2**20
    finally:
        child.kill()
        child.wait()


def test_real_chapters_09_and_10_need_no_local_real_grid_runs(tmp_path) -> None:
    """A fresh checkout (no runs/real) builds: lite0 from the build's run, the rest extracted."""
    params = edition.real_chapter_parameters(Path("/data/real"), runs_root=tmp_path)
    lite0 = str(tmp_path / "real_book" / "ptbxl-efficientnet_lite0-bn-noaug")
    assert params["09_meta_embeddings"]["run_dirs"] == lite0
    assert params["09_meta_embeddings"]["extra_backbones"] == (
        "efficientnet_lite1,efficientnet_lite2")
    assert params["10_autoencoder_features"]["bn_run"] == lite0
    assert params["10_autoencoder_features"]["ft_run"] == str(
        tmp_path / "real" / "ptbxl-efficientnet_lite0-ft-noaug")
    # the real grid's lite1 run (with features) is used as it is; lite2 still extracted
    grid_run = tmp_path / "real" / "ptbxl-efficientnet_lite1-bn-noaug"
    grid_run.mkdir(parents=True)
    (tmp_path / "real" / "ptbxl-efficientnet_lite2-bn-noaug").mkdir()  # no features.npz
    (grid_run / "features.npz").write_bytes(b"")
    sources = edition.meta_embedding_sources(tmp_path)
    assert sources == {"run_dirs": f"{lite0},{grid_run}", "extra_backbones": "efficientnet_lite2"}
