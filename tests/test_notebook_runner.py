"""papermill on jupytext notebooks: parameters, atomic output, clear failures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from fusion_utils.notebook_runner import (
    NotebookExecutionError,
    execute_notebook,
    notebook_parameters,
)

TINY = Path(__file__).parent / "fixtures" / "runner" / "tiny.py"


def test_parameters_are_read_with_type_default_and_help():
    params = notebook_parameters(TINY)
    assert params["n"] == {"type": "int", "default": "3", "help": "how many squares to write"}
    assert set(params) == {"n", "out", "fail"}


def test_execute_injects_parameters_and_writes_the_executed_notebook(tmp_path):
    result = tmp_path / "squares.txt"
    out = execute_notebook(TINY, tmp_path / "run.ipynb", {"n": 5, "out": str(result)},
                           cwd=tmp_path)
    assert result.read_text() == "0,1,4,9,16"
    nb = nbformat.read(out, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert ["injected-parameters"] in tags


def test_unknown_parameter_is_refused_before_running(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter.*typo"):
        execute_notebook(TINY, tmp_path / "x.ipynb", {"typo": 1})


def test_failure_names_the_notebook_and_keeps_no_output(tmp_path):
    out = tmp_path / "x.ipynb"
    with pytest.raises(NotebookExecutionError, match="tiny.py.*ValueError.*asked to fail"):
        execute_notebook(TINY, out, {"fail": True, "out": str(tmp_path / "r")}, cwd=tmp_path)
    assert not out.exists()
    assert out.with_suffix(".failed.ipynb").exists()
