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


# --- parameter types (issue 15): checked against the parameters cell before any kernel starts --

def _no_kernel(monkeypatch):
    import papermill

    calls = []

    def fake(nb, output, parameters=None, **kwargs):
        calls.append(parameters)

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return calls


@pytest.mark.parametrize(("params", "message"), [
    ({"n": "abc"}, r"tiny\.py: parameter 'n' expects int \(default 3\), got str 'abc'"),
    ({"n": 2.5}, r"parameter 'n' expects int .*got float 2\.5"),
    ({"n": True}, r"parameter 'n' expects int .*got bool True"),
    ({"fail": "no"}, r"parameter 'fail' expects bool .*got str 'no'"),
    ({"out": 3}, r"parameter 'out' expects str .*got int 3"),
])
def test_wrong_parameter_type_is_refused_before_the_kernel(tmp_path, monkeypatch, params, message):
    from fusion_utils.errors import NotebookParameterError

    calls = _no_kernel(monkeypatch)
    with pytest.raises(NotebookParameterError, match=message):
        execute_notebook(TINY, tmp_path / "x.ipynb", params)
    assert calls == [] and not (tmp_path / "x.ipynb").exists()


def test_compatible_parameter_types_pass(tmp_path, monkeypatch):
    import numpy as np

    from fusion_utils.notebook_runner import check_parameter_types

    declared = {"x": {"type": "float", "default": "0.5"}, "k": {"type": "int", "default": "1"},
                "p": {"type": "str", "default": '""'}, "a": {"type": "None", "default": "1"}}
    got = check_parameter_types(declared, {"x": 2, "k": np.int64(4), "p": tmp_path,
                                           "a": object}, "nb")
    assert got == {"x": 2, "k": 4, "p": str(tmp_path), "a": object}
    assert type(got["k"]) is int
    assert check_parameter_types(declared, {"x": None}, "nb") == {"x": None}
    calls = _no_kernel(monkeypatch)
    execute_notebook(TINY, tmp_path / "x.ipynb", {"out": tmp_path / "r.txt", "n": 2})
    assert calls == [{"out": str(tmp_path / "r.txt"), "n": 2}]


def test_a_kernel_that_dies_at_start_is_started_again(tmp_path, monkeypatch) -> None:
    """Two kernels starting at once can draw one port; the loser dies before any cell ran."""
    import papermill

    from fusion_utils import notebook_runner

    calls = []
    real = papermill.execute_notebook

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    out = notebook_runner.execute_notebook(TINY, tmp_path / "out.ipynb",
                                           {"out": str(tmp_path / "r")}, cwd=tmp_path)
    assert out.is_file() and len(calls) == 2

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(papermill, "execute_notebook", broken)
    with pytest.raises(RuntimeError, match="something else"):  # other errors are not retried
        notebook_runner.execute_notebook(TINY, tmp_path / "out2.ipynb",
                                         {"out": str(tmp_path / "r2")}, cwd=tmp_path)
