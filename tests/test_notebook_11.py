"""Notebook 11 (domain similarity) executed with papermill on a tiny synthetic cohort.

The grid results and the committed real distances are hand-made, so the numbers the chapter
derives from them (FT - BN, metadata gains, the real PTB-XL - HAM10000 gaps and the verdict) are
known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters


def _outputs(nb: nbformat.NotebookNode) -> tuple[str, int]:
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            data = out.get("data", {})
            for key in ("text/markdown", "text/plain"):
                if key in data:
                    text.append(data[key])
            images += "image/png" in data
    return "\n".join(text), images


def _grid_results() -> pd.DataFrame:
    """BN/FT x image/fused macro AUROC for lite0 on both datasets (no augmentation)."""
    auroc = {("ham10000", "bn"): (0.80, 0.85), ("ham10000", "ft"): (0.78, 0.81),
             ("ptbxl", "bn"): (0.60, 0.61), ("ptbxl", "ft"): (0.70, 0.72)}
    rows = []
    for (dataset, mode), values in auroc.items():
        cid = f"{dataset}-efficientnet_lite0-{mode}-noaug"
        for model, value in zip(("image", "fused"), values, strict=True):
            for metric, v in (("auroc", value), ("sensitivity", value - 0.3)):
                rows.append({"grid": "hand", "config_id": cid, "dataset": dataset,
                             "backbone": "efficientnet_lite0", "mode": mode, "augment": False,
                             "metric": metric, "class": "macro_mean", "model": model,
                             "value": v})
    return pd.DataFrame(rows)


def _real_dir(tmp: Path) -> Path:
    """Committed-looking real distances: lite0 gap 0.4 (se 0.05), lite1 gap 0.05 (se 0.05)."""
    out = tmp / "real"
    out.mkdir()
    rows, layers = [], []
    for backbone, ham, ptb in (("efficientnet_lite0", 0.3, 0.7), ("efficientnet_lite1", 0.5,
                                                                   0.55)):
        for dataset, d in (("ham10000", ham), ("ptbxl", ptb)):
            rows.append({"backbone": backbone, "dataset": dataset, "n_images": 256,
                         "distance": d, "se": 0.05 / 2 ** 0.5, "ci_low": d - 0.05,
                         "ci_high": d + 0.05, "noise_floor": 0.001, "n_layers": 2,
                         "n_bootstrap": 200, "seconds": 1.0, "weights": "imagenet"})
            for depth in range(2):
                layers.append({"layer": f"bn{depth}", "depth": depth, "channels": 4,
                               "frechet": 1.0, "frechet_norm": d * (1 + depth),
                               "mean_shift": 0.1, "var_ratio": 1.0, "backbone": backbone,
                               "dataset": dataset})
    pd.DataFrame(rows).to_parquet(out / "distances.parquet")
    pd.DataFrame(layers).to_parquet(out / "layers.parquet")
    (out / "PROVENANCE.json").write_text(json.dumps(
        {"command": "python -m fusion_utils.features.domain_similarity real",
         "git_commit": "abc", "parameters": {"seed": 0, "n_bootstrap": 200},
         "machine": {"cores": 2, "cpu_model": "test"}}))
    return out


def test_parameters_are_documented() -> None:
    params = notebook_parameters("11_domain_similarity")
    assert list(params) == ["backbones", "n_images", "n_bootstrap", "seed", "ham_manifest",
                            "ptbxl_manifest", "results_path", "runs_dir", "real_dir"]
    assert all(p["help"] for p in params.values())


@pytest.mark.slow
def test_notebook_11_on_a_tiny_cohort(demo_cohort: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_utils.data.manifest import build_manifest, save_manifest

    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    paths = {}
    for dataset in ("ham10000", "ptbxl"):
        df, _ = build_manifest(dataset, demo_cohort / dataset)
        paths[dataset] = str(save_manifest(df, tmp_path / f"{dataset}.parquet"))
    _grid_results().to_parquet(tmp_path / "grid.parquet")
    out = execute_notebook("11_domain_similarity", tmp_path / "11.ipynb", {
        "n_images": 8, "n_bootstrap": 20, "ham_manifest": paths["ham10000"],
        "ptbxl_manifest": paths["ptbxl"], "results_path": str(tmp_path / "grid.parquet"),
        "real_dir": str(_real_dir(tmp_path))}, timeout=600)
    text, images = _outputs(nbformat.read(out, as_version=4))
    assert images == 3  # live distances, committed real distances, image statistics
    assert "seeded subset of 8" in text
    # FT - BN and the metadata gains, from the hand-made grid: ham -0.02, ptbxl +0.10
    nb = nbformat.read(out, as_version=4)
    joined = next(o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
                  if "ft_minus_bn" in o.get("data", {}).get("text/plain", ""))
    assert "-0.02" in joined and "0.1" in joined and "0.05" in joined
    assert "across the 2 datasets with efficientnet_lite0" in text
    assert "exact permutation p = 1.00" in text
    # committed real distances: gaps +0.400 and +0.050, each with se 0.050
    assert "lite0 +0.400 (se 0.050), lite1 +0.050 (se 0.050)" in text
    assert "not consistently farther" in text
    assert "for 1 of 2 networks" in text
    assert "image-statistics distance" in text


@pytest.mark.slow
def test_notebook_11_without_real_distances(demo_cohort: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_utils.data.manifest import build_manifest, save_manifest

    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    paths = {}
    for dataset in ("ham10000", "ptbxl"):
        df, _ = build_manifest(dataset, demo_cohort / dataset)
        paths[dataset] = str(save_manifest(df, tmp_path / f"{dataset}.parquet"))
    _grid_results().to_parquet(tmp_path / "grid.parquet")
    out = execute_notebook("11_domain_similarity", tmp_path / "11.ipynb", {
        "n_images": 4, "n_bootstrap": 10, "ham_manifest": paths["ham10000"],
        "ptbxl_manifest": paths["ptbxl"], "results_path": str(tmp_path / "grid.parquet"),
        "real_dir": "none"}, timeout=600)
    text, images = _outputs(nbformat.read(out, as_version=4))
    assert images == 2
    assert "No committed real distances shown (real_dir = none)." in text
    assert "On the real data" not in text.split("**Answer.**")[-1]
