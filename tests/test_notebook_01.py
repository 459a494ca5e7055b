"""Notebook 01 executed through papermill with tiny parameters on the real samples."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from fusion_utils.data.manifest import load_manifest
from fusion_utils.notebook_runner import execute_notebook, notebook_parameters

NOTEBOOK = "01_data_preparation"
PARAMETERS = {"dataset": "str", "data_dir": "str", "sampling_rate": "int", "split_scheme": "str",
              "seed": "int", "max_records": "int", "metadata_columns": "str",
              "manifest_path": "str", "image_dir": "str"}


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.append(out.get("data", {}).get("text/plain", ""))
            assert out.get("output_type") != "error"
    return "\n".join(text)


def _n_figures(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum("image/png" in out.get("data", {}) for cell in nb.cells
               for out in cell.get("outputs", []))


def test_parameters_are_documented() -> None:
    params = notebook_parameters(NOTEBOOK)
    assert {k: v["type"] for k, v in params.items()} == PARAMETERS
    assert all(v["help"] for v in params.values())
    nb = jupytext.read(Path(__file__).parents[1] / "notebooks" / f"{NOTEBOOK}.py")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.shared_data
def test_runs_on_real_ptbxl(shared_ptbxl: Path, tmp_path: Path) -> None:
    out = tmp_path / "ptbxl.parquet"
    executed = execute_notebook(NOTEBOOK, tmp_path / "01_ptbxl.ipynb", {
        "dataset": "ptbxl", "data_dir": str(shared_ptbxl), "max_records": 25,
        "split_scheme": "strat_fold", "metadata_columns": "all", "manifest_path": str(out),
    })
    text = _outputs(executed)
    assert "rows in table:            21837" in text
    assert "skipped, file missing:    14739" in text
    df = load_manifest(out)
    assert len(df) == 25 and set(df["label"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert df.attrs["split_scheme"] == "strat_fold" and df.attrs["max_records"] == 25
    assert "meta.device" in df.columns
    # class balance, metadata, two ECGs, split counts
    assert _n_figures(executed) == 5


@pytest.mark.slow
@pytest.mark.shared_data
def test_runs_on_real_ham10000(shared_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "ham.parquet"
    executed = execute_notebook(NOTEBOOK, tmp_path / "01_ham.ipynb", {
        "dataset": "ham10000", "data_dir": str(shared_ham), "split_scheme": "group",
        "manifest_path": str(out),
    })
    text = _outputs(executed)
    assert "records in the manifest:  273" in text
    assert "classes: akiec 5, bcc 11, bkl 19, df 4, mel 74, nv 156, vasc 4" in text
    assert "0 of them have records in more than one split" in text
    df = load_manifest(out)
    assert len(df) == 273 and df.groupby("group")["split"].nunique().max() == 1
    assert _n_figures(executed) == 4  # class balance, metadata, example images, split counts
