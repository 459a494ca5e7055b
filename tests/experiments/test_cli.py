"""Tests of fusion_utils.experiments.cli: the command line on the project's grid files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_utils.experiments.cli import main
from fusion_utils.experiments.spec import DEFAULT_NOTEBOOKS
from tests.experiments.grid_helpers import ROOT


@pytest.mark.parametrize("name", ["book.yaml", "paper.yaml"])
def test_project_grids_route_to_the_real_notebooks(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = [n for n in DEFAULT_NOTEBOOKS if not (ROOT / "notebooks" / f"{n}.py").is_file()]
    if missing:
        pytest.skip(f"notebook(s) {', '.join(missing)} not written yet")
    code = main(["run", str(ROOT / "experiments" / name), "--dry-run",
                      "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    n = 8 if name == "book.yaml" else 64
    assert code == 0 and f"[grid] {n} planned" in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
