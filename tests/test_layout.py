"""The package's shape: subpackages named after the book's parts, lazy and complete re-exports,
infrastructure at the top, book tooling outside the science namespace."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fusion_utils"
PARTS = ("data", "scalograms", "features", "fusion", "evaluation", "interpret", "experiments")
INFRASTRUCTURE = {"__init__", "allocator", "errors", "io", "notebook_runner", "paths",
                  "run_folder"}


def test_top_level_holds_the_book_parts_and_the_infrastructure_only() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(PARTS)
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= INFRASTRUCTURE, f"unexpected top-level modules: {modules - INFRASTRUCTURE}"


def test_import_is_cheap() -> None:
    """``import fusion_utils`` and each part's ``__init__`` load neither torch nor matplotlib."""
    code = ("import sys, fusion_utils\n"
            f"for part in {PARTS!r}: __import__('fusion_utils.' + part)\n"
            "heavy = [m for m in ('torch', 'matplotlib', 'sklearn', 'pandas')"
            " if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("part", PARTS)
def test_every_re_exported_name_resolves_to_its_module(part: str) -> None:
    package = importlib.import_module(f"fusion_utils.{part}")
    modules = {p.stem for p in (PACKAGE / part).glob("*.py")
               if p.stem != "__init__" and not p.stem.startswith("_")}
    assert modules <= set(package.__all__), (
        f"public modules not listed: {modules - set(package.__all__)}")
    for name in package.__all__:
        obj = getattr(package, name)
        if name in modules:
            continue
        home = getattr(obj, "__module__", None)
        if home is not None and (inspect.isfunction(obj) or inspect.isclass(obj)):
            assert home.startswith(f"fusion_utils.{part}"), f"{part}.{name} comes from {home}"


@pytest.mark.parametrize("part", PARTS)
def test_each_public_module_declares_all(part: str) -> None:
    for path in (PACKAGE / part).glob("*.py"):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
        assert "__all__" in names, f"{path.relative_to(ROOT)} has no __all__"


def test_science_package_never_imports_the_book_tooling() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if "fusion_book" in p.read_text()
                 and any(line.lstrip().startswith(("import fusion_book", "from fusion_book"))
                         for line in p.read_text().splitlines())]
    assert offenders == []


def test_tests_mirror_the_modules() -> None:
    """Each public module of a part has a test file of the same name under tests/<part>/."""
    missing = []
    for part in PARTS:
        for path in (PACKAGE / part).glob("*.py"):
            if path.stem.startswith("_") or path.stem == "__main__":
                continue
            if not (ROOT / "tests" / part / f"test_{path.stem}.py").is_file():
                missing.append(f"tests/{part}/test_{path.stem}.py")
    assert missing == []


def test_architecture_map_names_functions_that_exist() -> None:
    """ARCHITECTURE.md's chapter -> subpackage -> main functions table stays true."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 5 and "`" in line]
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        sub = cells[2].strip("`")
        module = importlib.import_module(f"fusion_utils.{sub}")
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", cells[3]):
            obj = module
            for part in name.split("."):
                obj = getattr(obj, part)
            checked += 1
    assert checked >= 30
    for stem in re.findall(r"`(0\d_[a-z_]+)`", text):
        assert (ROOT / "notebooks" / f"{stem}.py").is_file(), stem
