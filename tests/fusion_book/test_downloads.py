"""A tiny Jupyter Book built like the real one: each chapter page offers its executed notebook
and its source for download, both copied into the site; no launch button without a repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fusion_book.check import broken_downloads
from fusion_book.prerequisites import annotate_executed
from fusion_book.runtimes import save_machine, write_runtimes_page
from fusion_book.settings import write_book_config
from fusion_utils.paths import project_root

CONFIG = """title: tiny
only_build_toc_files: true
exclude_patterns: [_build, notebooks, ".*"]   # as the book's: the .py sources are not pages
execute:
  execute_notebooks: "off"
repository:
  url: ""
launch_buttons:
  notebook_interface: classic
"""
TOC = """format: jb-book
root: book/intro
chapters:
  - file: book/executed/04_fusion_ptbxl
  - file: book/runtimes
"""


def _tiny_book(root: Path) -> None:
    (root / "book" / "executed").mkdir(parents=True)
    (root / "notebooks").mkdir()
    shutil.copy(project_root() / "notebooks" / "04_fusion.py", root / "notebooks")
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "book" / "intro.md").write_text("# Intro\n")
    shutil.copy(project_root() / "book" / "runtimes.md", root / "book")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Fusion\n\nIntro."),
                nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["papermill"] = {"duration": 5.0, "parameters": {"dataset": "ptbxl"}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    executed = root / "book" / "executed"
    nbformat.write(nb, executed / "04_fusion_ptbxl.ipynb")
    save_machine(executed)
    annotate_executed(executed)
    write_runtimes_page(executed, root / "runs")


def _build(root: Path, *extra: str) -> Path:
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going", "--builder", "html",
                    "-q", *extra], check=True, cwd=root, capture_output=True)
    return root / "_build" / "html"


@pytest.mark.slow
def test_pages_offer_ipynb_and_py_downloads_and_no_launch_button(tmp_path):
    _tiny_book(tmp_path)
    html = _build(tmp_path)
    page = "book/executed/04_fusion_ptbxl.html"
    names = sorted(p.name for p in (html / "_downloads").rglob("*") if p.is_file())
    assert names == ["04_fusion.py", "04_fusion_ptbxl.ipynb"]
    text = (html / page).read_text()
    assert "mybinder.org" not in text and "colab.research.google.com" not in text
    assert "Before you start" in text and "5 s in this build" in text
    runtimes = (html / "book/runtimes.html").read_text()
    assert "Machine:" in runtimes and "CPU cores" in runtimes
    assert 'href="executed/04_fusion_ptbxl.html"' in runtimes and "5 s" in runtimes
    assert broken_downloads(html, page) == []
    shutil.rmtree(next((html / "_downloads").iterdir()))  # the check notices a missing file
    assert [p.kind for p in broken_downloads(html, page)] == ["broken-download"]

    config = write_book_config(tmp_path, tmp_path / "_build" / "_config.yml",
                               {"FUSION_REPOSITORY_URL": "https://github.com/someone/book"})
    text = (_build(tmp_path, "--config", str(config)) / page).read_text()
    assert "https://mybinder.org/v2/gh/someone/book/main" in text
