"""Notebook 09 (meta-embeddings) executed with papermill on three toy run folders."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters
from tests.fusion.test_meta_embedding import _write_runs


def _outputs(nb: nbformat.NotebookNode) -> tuple[str, list[str], list[str], int]:
    """All text output, the Markdown outputs, the HTML outputs and the number of images."""
    text, markdown, html, images = [], [], [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            data = out.get("data", {})
            if "text/markdown" in data:
                markdown.append(data["text/markdown"])
            if "text/html" in data:
                html.append(data["text/html"])
            if "text/plain" in data:
                text.append(data["text/plain"])
            images += "image/png" in data
    return "\n".join(text), markdown, html, images


def test_parameters_are_documented() -> None:
    params = notebook_parameters("09_meta_embeddings")
    assert list(params) == ["dataset", "run_dirs", "extra_backbones", "manifest_path",
                            "metadata_columns", "encoding", "l2", "epochs", "patience", "lr",
                            "seed", "n_bootstrap", "results_dir"]
    assert all(p["help"] for p in params.values())


@pytest.mark.slow
def test_notebook_09_compares_and_shows_the_committed_table(tmp_path: Path) -> None:
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.fusion import meta_embedding as me

    runs, manifest_path = _write_runs(tmp_path)
    committed = tmp_path / "committed"  # a committed real table, as the CLI writes it
    committed.mkdir()
    res = me.compare_meta_embeddings(
        me.load_sources(runs), load_manifest(manifest_path), n_bootstrap=20,
        config=me.DVMEConfig(dim=8, n_heads=2, max_epochs=5, patience=2))
    res.metrics.to_parquet(committed / "ptbxl.parquet")
    res.attention.to_parquet(committed / "ptbxl_attention.parquet")
    (committed / "PROVENANCE.json").write_text(json.dumps({"ptbxl": {
        **res.info, "command": "python -m fusion_utils.fusion.meta_embedding real --dataset "
        "ptbxl", "git_commit": "abc123", "seconds": 12.5, "machine": {"cores": 2}}}))

    out = execute_notebook("09_meta_embeddings", tmp_path / "09.ipynb",
                           {"run_dirs": str(tmp_path / "ptbxl-toy*-bn-noaug"),
                            "extra_backbones": "", "manifest_path": str(manifest_path),
                            "epochs": 15, "patience": 5, "n_bootstrap": 30,
                            "results_dir": str(committed)}, timeout=300)
    text, markdown, html, images = _outputs(nbformat.read(out, as_version=4))
    assert images == 2  # live attention figure and the committed table's
    data_line = next(m for m in markdown if m.startswith("**Data:**"))
    assert f"PTB-XL (manifest `{manifest_path}`), 200 records (120 train, 40 validation, 40 " \
        "test)" in data_line
    assert "`toy0`, `toy1`, `toy2`" in data_line
    # the live summary table: seven models with CIs, toy0 (the informative one) chosen
    live = next(h for h in html if "dvme+meta-concat" in h and "balanced accuracy" in h)
    for model in ("single", "concat+meta", "dvme+meta-token"):
        assert f">{model}<" in live
    assert "single single+meta" in text  # toy0's row of the validation table
    answers = [m for m in markdown if m.startswith("**Answer")]
    assert len(answers) == 2  # live and committed
    assert answers[0].startswith("**Answer (PTB-XL, 40 test records):** ")  # neither demo/real
    assert " of 5 combinations beat the best single backbone on macro AUROC" in answers[0]
    assert "`dvme` is " in answers[0] and "balanced accuracy difference" in answers[0]
    committed_line = next(m for m in markdown if m.startswith("**Real PTB-XL** (committed)"))
    assert "200 records, 40 test; backbones toy0, toy1, toy2" in committed_line
    assert "git commit `abc123`" in committed_line
    assert "**Real HAM10000:** no committed table yet" in "\n".join(markdown)
    assert "1 committed real table(s) shown" in text
