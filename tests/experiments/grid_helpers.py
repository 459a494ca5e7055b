"""Helpers shared by the grid tests: a grid of the dummy notebooks in tests/fixtures/grid_notebooks.

The dummy notebooks write notebook 05's output formats in a second, so the tests that run them
test the runner, not the science.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fusion_utils.paths import project_root

ROOT = project_root(Path(__file__).parent)
NOTEBOOKS = Path(__file__).parents[1] / "fixtures" / "grid_notebooks"


def dummy_spec(**datasets: dict) -> dict:
    """A grid of the dummy notebooks: one configuration per dataset (ft, augmentation on)."""
    return {
        "name": "dummy",
        "notebooks": [str(NOTEBOOKS / "dummy_features.py"), str(NOTEBOOKS / "dummy_evaluation.py")],
        "cell_timeout": 120,
        "defaults": {"backbone": "tiny", "seed": 0},
        "datasets": datasets or {"ptbxl": {}, "ham10000": {}},
        "axes": {"mode": ["ft"], "augment": [True]},
    }


def write_spec(tmp_path: Path, spec: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path
