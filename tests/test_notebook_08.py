"""Notebook 08 (results across the grid) executed with papermill on hand-made results tables."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters
from tests.experiments.test_findings import make_results


def _outputs(nb: nbformat.NotebookNode) -> tuple[str, list[str], int]:
    """All text output, the Markdown outputs, and the number of images."""
    text, markdown, images = [], [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            data = out.get("data", {})
            if "text/markdown" in data:
                markdown.append(data["text/markdown"])
            if "text/plain" in data:
                text.append(data["text/plain"])
            images += any(k.endswith("image/png") for k in data)  # glued figures too
    return "\n".join(text), markdown, images


def test_parameters_are_documented() -> None:
    params = notebook_parameters("08_results")
    assert list(params) == ["results_path", "runs_dir", "paper_runs_dir", "dataset", "tol",
                            "resolution_data_dir", "resolution_run_dir", "real_results_path"]
    assert all(p["help"] for p in params.values())


@pytest.mark.slow
def test_notebook_08_book_grid_and_paper_grid(tmp_path: Path) -> None:
    book = make_results(backbones=("efficientnet_lite0",))
    book.to_parquet(tmp_path / "book.parquet")
    paper_runs = tmp_path / "paper_runs"  # a runs folder as the grid leaves it
    for cid, table in make_results().groupby("config_id"):
        (paper_runs / cid).mkdir(parents=True)
        table.to_parquet(paper_runs / cid / "results.parquet")
        (paper_runs / cid / "status.json").write_text(json.dumps({"state": "done"}))

    out = execute_notebook("08_results", tmp_path / "08.ipynb",
                           {"results_path": str(tmp_path / "book.parquet"),
                            "paper_runs_dir": str(paper_runs), "real_results_path": "none"},
                           timeout=300)
    text, markdown, images = _outputs(nbformat.read(out, as_version=4))
    assert images == 2  # Figs. 2-3 heatmaps and Fig. 4 box plots (glued)
    book_findings, paper_findings = (m for m in markdown if m.startswith("| # |"))
    # the one-network book grid cannot test the network-specific findings...
    for claim in ("AlexNet fine-tuned degrades", "VGG19 fine-tuned", "MobileNetV2, GoogLeNet"):
        line = next(ln for ln in book_findings.splitlines() if claim in ln)
        assert "*not testable*" in line
    assert "16 reproduced, 0 not reproduced, 6 not testable" in text
    # ...the paper-like full table reproduces all but the VGG16 exception and the two findings
    # that need columns it lacks (image_weight_ratio, fit and extraction seconds)
    assert "32 completed configuration(s) of the paper grid" in text
    assert paper_findings.count("| reproduced |") == 19


@pytest.mark.slow
def test_notebook_08_one_dataset_without_paper_grid(tmp_path: Path) -> None:
    make_results(backbones=("efficientnet_lite0",)).to_parquet(tmp_path / "r.parquet")
    # the CIs committed beside the real table (the real edition: it is the main table)
    rows = [{"config_id": "ptbxl-efficientnet_lite0-bn-noaug", "dataset": "ptbxl",
             "backbone": "efficientnet_lite0", "mode": "bn", "augment": False, "n_test": 229,
             "metric": metric, "model": model, "estimate": est, "ci_low": est - 0.03,
             "ci_high": est + 0.03, "n_bootstrap": 1000}
            for metric in ("auroc", "sensitivity")
            for model, est in (("image", 0.52), ("fused", 0.56), ("fused - image", 0.04))]
    pd.DataFrame(rows).to_parquet(tmp_path / "bootstrap_ci.parquet")
    out = execute_notebook("08_results", tmp_path / "08.ipynb",
                           {"results_path": str(tmp_path / "r.parquet"), "dataset": "ptbxl",
                            "paper_runs_dir": "none",
                            "real_results_path": str(tmp_path / "r.parquet")},
                           timeout=300)
    text, markdown, _ = _outputs(nbformat.read(out, as_version=4))
    assert "ham10000-" not in text.split("The paper grid is not shown")[0]
    assert "The paper grid is not shown" in text
    (findings,) = (m for m in markdown if m.startswith("| # |"))
    line = next(ln for ln in findings.splitlines() if "PTB-XL's changes" in ln)
    assert "*not testable*" in line  # needs both datasets
    # the real-grid section does not repeat the main table
    assert "The real grid's table is this chapter's main table" in text
    assert any("ptbxl macro AUROC: the 95% CI of the gain is above 0 for 1 of 1 configurations"
               " and below 0 for 0 (229 test records)" in m for m in markdown)


@pytest.mark.slow
def test_notebook_08_shows_the_committed_real_grid_beside_the_book_grid(tmp_path: Path) -> None:
    make_results(backbones=("efficientnet_lite0",)).to_parquet(tmp_path / "book.parquet")
    make_results().to_parquet(tmp_path / "real.parquet")
    out = execute_notebook("08_results", tmp_path / "08.ipynb",
                           {"results_path": str(tmp_path / "book.parquet"),
                            "paper_runs_dir": "none",
                            "real_results_path": str(tmp_path / "real.parquet")}, timeout=300)
    text, markdown, _ = _outputs(nbformat.read(out, as_version=4))
    book_findings, real_findings = (m for m in markdown if m.startswith("| # |"))
    assert "32 configuration(s) of the real grid" in text
    assert "real grid: 19 reproduced" in text
    assert real_findings.count("| reproduced |") == 19 != book_findings.count("| reproduced |")
    assert "Gessert et al. 2020" in text
    assert "no committed CIs (results/real/bootstrap_ci.parquet)" in text  # none beside it
