"""The build's grid steps: a failed configuration stops it by name; chapters 03-05 are copied."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fusion_book.build import _copy_chapters, _raise_failed

STEMS = ("03_feature_extraction", "04_fusion", "05_evaluation")


def test_a_failed_configuration_stops_the_build_naming_it() -> None:
    ok = pd.DataFrame({"config_id": ["a", "b"], "state": ["done", "done"], "error": [None, None]})
    _raise_failed(ok, "book-grid")  # nothing failed: nothing raised
    bad = pd.DataFrame({"config_id": ["a", "b", "c"], "state": ["done", "failed", "failed"],
                        "error": [None, "cell 3: ValueError", "timeout"]})
    with pytest.raises(RuntimeError, match=r"^2 real configuration\(s\) failed: b: cell 3: "
                                           r"ValueError; c: timeout$"):
        _raise_failed(bad, "real")


def test_chapters_are_the_chapter_configurations_notebooks(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "executed"
    out.mkdir()
    for config in ("ptbxl-x-bn-noaug", "ham10000-x-bn-noaug"):
        (runs / config).mkdir(parents=True)
        for stem in STEMS:
            (runs / config / f"{stem}.ipynb").write_text(f"{config}/{stem}")
    configs = {"ptbxl": "ptbxl-x-bn-noaug", "ham10000": "ham10000-x-bn-noaug"}
    _copy_chapters(runs, configs, out, "book grid")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{d}.ipynb" for stem in STEMS for d in configs)
    assert (out / "04_fusion_ham10000.ipynb").read_text() == "ham10000-x-bn-noaug/04_fusion"
    (runs / "ptbxl-x-bn-noaug" / "05_evaluation.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match=r"book grid did not produce .*ptbxl-x-bn-noaug/"
                                                r"05_evaluation\.ipynb"):
        _copy_chapters(runs, configs, out, "book grid")
