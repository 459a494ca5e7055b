"""The chapters 01 -> 03 -> 04 -> 05 end to end on the real samples in ../shared/data.

The 273 real HAM10000 originals cover 7 classes, so some classes have one or two test images:
the evaluation must report NaN for what is undefined rather than crash. Runs with the offline
ImageNet backbone (efficientnet_lite0), bottleneck features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_utils.data.manifest import load_manifest
from fusion_utils.features.extraction import FeatureSet
from fusion_utils.notebook_runner import execute_notebook

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.mark.parametrize("dataset", ["ham10000", "ptbxl"])
def test_chapters_run_end_to_end_on_the_real_sample(dataset, shared_ham, shared_ptbxl, tmp_path,
                                                    monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    data_dir = {"ham10000": shared_ham, "ptbxl": shared_ptbxl}[dataset]
    manifest = tmp_path / "manifest.parquet"
    run_dir = tmp_path / "run"
    # PTB-XL: 60 of the 1,533 usable real records keep the test quick.
    max_records = 60 if dataset == "ptbxl" else 0
    execute_notebook("01_data_preparation", tmp_path / "01.ipynb",
                     {"dataset": dataset, "data_dir": str(data_dir), "max_records": max_records,
                      "manifest_path": str(manifest)})
    m = load_manifest(manifest)
    assert set(m["split"]) == {"train", "val", "test"}
    execute_notebook("03_feature_extraction", tmp_path / "03.ipynb",
                     {"dataset": dataset, "manifest_path": str(manifest), "run_dir": str(run_dir),
                      "mode": "bn", "device": "cpu"})
    fs = FeatureSet.load(run_dir / "features.npz")
    assert fs.X.shape == (len(m), 1280) and np.isfinite(fs.X).all()
    assert sorted(fs.ids) == sorted(m["record_id"])
    execute_notebook("04_fusion", tmp_path / "04.ipynb",
                     {"dataset": dataset, "run_dir": str(run_dir), "manifest_path": str(manifest)})
    execute_notebook("05_evaluation", tmp_path / "05.ipynb",
                     {"dataset": dataset, "run_dir": str(run_dir), "n_bootstrap": 50})
    metrics = pd.read_parquet(Path(run_dir) / "metrics.parquet")
    macro = metrics[metrics["class"] == "macro_mean"].set_index(["metric", "model"])["value"]
    assert set(macro.index.get_level_values("model")) == {"image", "fused"}
    for model in ("image", "fused"):
        acc = macro[("accuracy", model)]
        assert 0.0 <= acc <= 1.0
        assert 0.0 <= macro[("specificity", model)] <= 1.0
