"""``fusion-book list/params/run``: papermill's parameter conventions, checks before the kernel."""

from __future__ import annotations

import json

import nbformat
import pytest

from fusion_book import cli

NOTEBOOK = '''# %% [markdown]
# # A tiny chapter

# %% tags=["parameters"]
n: int = 2  # how many
scale: float = 1.0  # a factor
name: str = "x"  # a name
flag: bool = False  # a switch

# %%
result = n * scale
if flag:
    raise RuntimeError(f"asked to fail with n={n}")
print(name, result)
'''


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "99_tiny.py"
    path.write_text(NOTEBOOK)
    return path


def test_values_are_typed_as_papermill_types_them():
    assert cli.resolve_value("True") is True and cli.resolve_value("None") is None
    assert cli.resolve_value("3") == 3 and isinstance(cli.resolve_value("3"), int)
    assert cli.resolve_value("0.001") == 0.001
    assert cli.resolve_value("age,sex") == "age,sex"


def test_later_sources_win_in_papermills_order(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("a: 1\nb: 1\nc: 1\nd: 1\n")
    got = cli.parse_parameters([("d", "4")], raw=[("c", "3")], yaml_strings=["b: 2\nc: 2"],
                               files=[str(f)])
    assert got == {"a": 1, "b": 2, "c": "3", "d": 4}
    with pytest.raises(ValueError, match="YAML mapping"):
        cli.parse_parameters(yaml_strings=["- 1"])


def test_check_parameters_names_unknown_and_mistyped(tiny):
    from fusion_utils.notebook_runner import notebook_parameters

    declared = notebook_parameters(tiny)
    assert cli.check_parameters(declared, {"n": 3, "scale": 2, "name": "y", "flag": True}) == []
    problems = cli.check_parameters(declared, {"n": 1.5, "flag": 1, "nn": 1, "name": 3})
    assert len(problems) == 4
    assert any("unknown parameter 'nn'" in p for p in problems)
    assert any("'n' is int" in p and "float 1.5" in p for p in problems)
    assert any("'flag' is bool" in p for p in problems)
    assert cli.check_parameters(declared, {"scale": True}) != []  # a bool is not a float


def test_list_and_params(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "04_fusion" in out and "08_results" in out
    assert cli.main(["params", "04_fusion"]) == 0
    out = capsys.readouterr().out
    assert "encoding" in out and '"paper"' in out and "standardised" in out


def test_run_refuses_bad_parameters_before_the_kernel(tiny, tmp_path, capsys):
    out = tmp_path / "out.ipynb"
    assert cli.main(["run", str(tiny), str(out), "-p", "n", "many"]) == 2
    assert "'n' is int" in capsys.readouterr().err and not out.exists()
    assert cli.main(["run", "no_such_chapter", str(out)]) == 2


@pytest.mark.slow
def test_run_executes_and_a_failing_cell_is_named(tiny, tmp_path, capsys):
    out = tmp_path / "out.ipynb"
    assert cli.main(["run", str(tiny), str(out), "-p", "n", "3", "-y", "scale: 0.5",
                     "--no-progress"]) == 0
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["papermill"]["parameters"] == {"n": 3, "scale": 0.5}
    assert "x 1.5" in json.dumps([c.get("outputs") for c in nb.cells])
    bad = tmp_path / "bad.ipynb"
    assert cli.main(["run", str(tiny), str(bad), "-p", "flag", "True", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: asked to fail with n=2" in err and "(cell " in err
    assert (tmp_path / "bad.failed.ipynb").is_file() and not bad.exists()
