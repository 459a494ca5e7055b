"""Run times come from papermill's metadata and the grid's status.json, never typed by hand."""

from __future__ import annotations

import json

import nbformat
import pytest

from fusion_book import prerequisites, runtimes
from fusion_utils.paths import project_root


def _executed(path, duration, parameters, title="# A chapter title\n\nIntro text."):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(title), nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["papermill"] = {"duration": duration, "parameters": parameters,
                                "end_time": "2026-11-27T10:00:00"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def book(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    _executed(executed / "01_data_preparation_ptbxl.ipynb", 12.4, {"dataset": "ptbxl"})
    _executed(executed / "04_fusion_ham10000.ipynb", 125.0,
              {"dataset": "ham10000", "run_dir": ""})
    nb = nbformat.v4.new_notebook()  # not executed by papermill: no timing, left out
    nbformat.write(nb, executed / "08_results.ipynb")
    runs = tmp_path / "runs"
    for cid, secs, stages in [("ptbxl-a", 61.0, {"03_feature_extraction": 50.0, "04_fusion": 11.0}),
                              ("ham10000-b", 3725.0, {"03_feature_extraction": 3700.0})]:
        (runs / cid).mkdir(parents=True)
        (runs / cid / "status.json").write_text(json.dumps(
            {"config_id": cid, "state": "done", "seconds": secs, "stages": stages,
             "threads": 2, "host": "h"}))
    machine = {"cores": 2, "cpu": "Test CPU", "memory_gib": 24.0, "gpus": [], "python": "3.11"}
    (executed / runtimes.MACHINE_FILE).write_text(json.dumps(machine))
    return executed, runs


def test_format_seconds_known_values():
    assert runtimes.format_seconds(42.4) == "42 s"
    assert runtimes.format_seconds(185) == "3 min 5 s"
    assert runtimes.format_seconds(3725) == "1 h 02 min"
    assert runtimes.format_seconds(None) == "?"


def test_chapter_and_grid_times_are_read_from_the_files(book):
    executed, runs = book
    ch = runtimes.chapter_times(executed)
    assert list(ch["page"]) == ["01_data_preparation_ptbxl", "04_fusion_ham10000"]
    assert list(ch["duration"]) == [12.4, 125.0]
    grid = runtimes.grid_times(runs)
    assert dict(zip(grid["config_id"], grid["seconds"], strict=True)) == {
        "ham10000-b": 3725.0, "ptbxl-a": 61.0}
    assert grid.set_index("config_id").loc["ptbxl-a", "stage.04_fusion"] == 11.0


def test_runtimes_page_names_machine_pages_and_configurations(book):
    executed, runs = book
    text = runtimes.write_runtimes_page(executed, runs).read_text()
    assert "2 CPU cores (Test CPU), 24 GiB memory, no GPU" in text
    assert "| {doc}`/book/executed/04_fusion_ham10000` | 2 min 5 s | `dataset=ham10000` |" in text
    assert "Chapters in total: 2 min 17 s." in text
    assert "| `ham10000-b` | done | 1 h 02 min | 1 h 01 min | ? | 2 |" in text
    assert "2 configurations, 1 h 03 min" in text
    assert "08_results" not in text


def test_machine_info_describes_this_machine():
    info = runtimes.machine_info()
    assert info["cores"] >= 1 and isinstance(info["gpus"], list) and info["cpu"]


def test_header_goes_under_the_title_once(book):
    executed, _ = book
    for _ in range(2):  # a second build replaces the header instead of adding another
        prerequisites.annotate_executed(executed)
    nb = nbformat.read(executed / "04_fusion_ham10000.ipynb", as_version=4)
    src = nb.cells[0].source
    assert src.startswith("# A chapter title\n\n<!-- fusion-book:header -->")
    assert src.count("<!-- fusion-book:header -->") == 1 and src.endswith("Intro text.")
    assert "2 min 5 s in this build (`dataset=ham10000`)" in src
    assert "{download}`executed notebook (.ipynb) <04_fusion_ham10000.ipynb>`" in src
    assert "{download}`source (.py) <../../notebooks/04_fusion.py>`" in src
    assert prerequisites.NEEDS["04_fusion"][0] in src


def test_every_chapter_notebook_has_prerequisites_and_an_existing_source():
    stems = sorted(p.stem for p in (project_root() / "notebooks").glob("[0-9]*.py"))
    assert sorted(prerequisites.NEEDS) == stems
    assert prerequisites.source_notebook("07_metadata_only_real_ham10000") == "07_metadata_only"
    with pytest.raises(KeyError, match="runtimes"):
        prerequisites.source_notebook("runtimes")


def test_exercise_table_lists_each_chapters_exercises_with_the_build_estimate(book, tmp_path):
    executed, _ = book
    text = runtimes.write_exercise_table(executed, project_root() / "notebooks",
                                         tmp_path / "ex.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 0")]
    fusion = [r for r in rows if r.startswith("| 04_fusion |")]
    assert len(fusion) == 4  # the four exercises; the chapter-3 command to run first is not one
    assert all(r.endswith("| 2 min 5 s |") for r in fusion)
    assert "`fusion-book run 04_fusion out.ipynb -p l2 0.001`" in text
    assert all(r.endswith("| ? |") for r in rows if r.startswith("| 02_scalograms |"))
    assert "2 CPU cores (Test CPU)" in text


def test_parameters_text_shows_project_paths_relative():
    root = project_root()
    text = runtimes.parameters_text({"dataset": "ptbxl", "run_dir": f"{root}/runs/book/x",
                                     "data_dir": "", "seed": 0, "other": "/elsewhere/y"})
    assert text == "`dataset=ptbxl`, `run_dir=runs/book/x`, `seed=0`, `other=/elsewhere/y`"
    assert runtimes.parameters_text({"data_dir": ""}) == "defaults"
