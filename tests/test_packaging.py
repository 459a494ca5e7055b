"""The project's own files install everything: pyproject, constraints and environment.yml agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently; dask[distributed] is two conda packages.
CONDA_NAMES = {"pywavelets": "pywavelets", "dask": "dask"}


def _name(requirement: str) -> str:
    name = re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            conda.add(_name(dep.split("=")[0]))
    conda -= {"python", "pip"}
    # dask[distributed] in pyproject is dask + distributed on conda-forge.
    named = conda | pip
    assert "distributed" in named
    named.discard("distributed")
    assert named == wanted, (
        f"only in pyproject: {sorted(wanted - named)}; "
        f"only in environment.yml: {sorted(named - wanted)}"
    )
    assert not conda & pip, f"listed twice: {sorted(conda & pip)}"


def test_constraints_pin_every_declared_dependency_and_the_tested_torch() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_name(name)] = version.strip()
    project = _pyproject()["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    missing = sorted(_name(r) for r in declared if _name(r) not in pins)
    assert not missing, f"constraints.txt lacks pins for {missing}"
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"
    assert pins["jupyter-book"].startswith("1.")


def test_jupyter_book_is_held_below_2() -> None:
    deps = _pyproject()["project"]["dependencies"]
    jb = next(d for d in deps if _name(d) == "jupyter-book")
    assert "<2" in jb


def test_lint_rules_hold_line_length_and_unused_imports() -> None:
    """`make lint` keeps the house rules: 100 columns and no unused imports, notebooks included."""
    import shutil
    import subprocess
    import sys

    lint = _pyproject()["tool"]["ruff"]["lint"]
    assert _pyproject()["tool"]["ruff"]["line-length"] == 100
    assert "E501" not in lint.get("ignore", []) and "F401" not in lint.get("ignore", [])
    for rules in lint.get("per-file-ignores", {}).values():
        assert "E501" not in rules and "F401" not in rules
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the project's `test` extra)")
    targets = ["fusion_utils", "fusion_book", "tests", "benchmarks", "notebooks"]
    out = subprocess.run([ruff, "check", "--no-cache", *targets], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert " ".join(targets) in (ROOT / "Makefile").read_text()
