"""Notebook 02 (scalograms) run with papermill on a tiny demo cohort, and its figure helpers."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters
from fusion_utils.paths import shared_data_dir

NOTEBOOK = "02_scalograms"
PARAMETERS = {"data_dir": "str", "manifest_path": "str", "wavelet": "str",
              "voices_per_octave": "int", "layout": "str", "normalisation": "str",
              "colormap": "str", "image_size": "int", "max_records": "int",
              "real_record": "str", "cache_dir": "str"}


def _outputs(path: Path) -> tuple[str, int]:
    nb = nbformat.read(path, as_version=4)
    text, figures = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error"
            text.append(out.get("text", ""))
            data = out.get("data", {})
            text.append(data.get("text/plain", "") + data.get("text/markdown", "")
                        + data.get("text/html", ""))
            figures += "image/png" in data
    return "\n".join(text), figures


def test_parameters_are_documented() -> None:
    params = notebook_parameters(NOTEBOOK)
    assert {k: v["type"] for k, v in params.items()} == PARAMETERS
    assert all(v["help"] for v in params.values())
    assert params["wavelet"]["default"] == '"morse"' and params["layout"]["default"] == '"3x4"'
    nb = jupytext.read(Path(__file__).parents[1] / "notebooks" / f"{NOTEBOOK}.py")
    assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_frequency_ticks_land_on_their_rows() -> None:
    from fusion_utils.scalograms.morse import morse_frequencies
    from fusion_utils.scalograms.plots import frequency_ticks

    freqs = morse_frequencies(1000)
    pos, labels = frequency_ticks(freqs)
    assert labels == ["0.5", "1", "2", "5", "10", "20", "40"]
    # row k has frequency f0 2^(-k/10): invert it
    expected = 10 * np.log2(freqs[0] / np.array([float(x) for x in labels]))
    np.testing.assert_allclose(pos, expected, atol=1e-6)


@pytest.mark.slow
def test_runs_on_demo_cohort(demo_cohort: Path, tmp_path: Path) -> None:
    cache_root = tmp_path / "scalograms"
    executed = execute_notebook(NOTEBOOK, tmp_path / "02.ipynb", {
        "data_dir": str(demo_cohort / "ptbxl"), "max_records": 15, "image_size": 96,
        "cache_dir": str(cache_root),
    }, timeout=600)
    text, figures = _outputs(executed)
    real = (shared_data_dir() / "ptbxl" / "records100" / "00000" / "00001_lr.hea").is_file()
    # wavelet, ECG, 12 scalograms, montages, intensity options, class averages, profiles
    assert figures == 7
    assert "15 records: 15 computed, 0 already cached, 0 failed" in text
    assert "15 records: 0 computed, 15 already cached, 0 failed" in text
    assert ("**real** record" in text) == real
    assert "43.4124" in text and "0.33916" in text  # the constants table (71 scales)
    pngs = list(cache_root.rglob("*.png"))
    assert len(pngs) == 15 and len(list(cache_root.glob("*/params.json"))) == 1
    assert all(p.parent.parent.name == "records100" for p in pngs)
