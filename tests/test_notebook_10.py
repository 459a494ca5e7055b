"""Notebook 10 (auto-encoder features) executed with papermill on a small demo cohort."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from fusion_utils.notebook_runner import execute_notebook, notebook_parameters
from tests.test_notebook_09 import _outputs


def test_parameters_are_documented() -> None:
    params = notebook_parameters("10_autoencoder_features")
    assert list(params) == ["dataset", "bn_run", "ft_run", "manifest_path", "max_images",
                            "code_channels", "epochs", "lr", "seed", "n_bootstrap",
                            "results_dir"]
    assert all(p["help"] for p in params.values())


def _runs(tmp_path: Path, demo_cohort: Path) -> tuple[Path, Path, Path]:
    """A 42-record demo HAM10000 manifest and toy BN/FT run folders for its records."""
    from fusion_utils.data.manifest import build_manifest, save_manifest
    from fusion_utils.features.extraction import FeatureSet, subsample_manifest
    from fusion_utils.run_folder import RunFolder

    manifest, _ = build_manifest("ham10000", demo_cohort / "ham10000")
    manifest = subsample_manifest(manifest, 42, seed=0)
    manifest_path = save_manifest(manifest, tmp_path / "ham10000.parquet")
    labels = manifest["label"].astype(str).to_numpy()
    classes = sorted(set(labels))
    onehot = (labels[:, None] == np.array(classes)[None]).astype(float)
    rng = np.random.default_rng(1)
    folders = []
    for mode, signal in (("bn", 0.5), ("ft", 2.0)):
        X = rng.normal(size=(len(manifest), 10))
        X[:, :len(classes)] += signal * onehot
        fs = FeatureSet(manifest["record_id"].astype(str), labels, manifest["split"].astype(str),
                        X, FeatureSet.names(10), {"mode": mode})
        folder = tmp_path / f"ham10000-toy-{mode}-noaug"
        RunFolder(folder).write_features(fs)
        folders.append(folder)
    return folders[0], folders[1], Path(manifest_path)


@pytest.mark.slow
def test_notebook_10_compares_bn_ae_ft_and_shows_the_committed_table(
        tmp_path: Path, demo_cohort: Path, monkeypatch) -> None:
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.features import autoencoder as ae
    from fusion_utils.run_folder import RunFolder

    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    bn_run, ft_run, manifest_path = _runs(tmp_path, demo_cohort)
    manifest = load_manifest(manifest_path)
    # a committed real table, as the CLI writes it (here from the toy BN and FT features)
    committed = tmp_path / "committed"
    committed.mkdir()
    bn, ft = RunFolder(bn_run).read_features(), RunFolder(ft_run).read_features()
    metrics, info = ae.compare_features({"bn": bn, "ae": bn, "ft": ft}, manifest, n_bootstrap=20)
    metrics.to_parquet(committed / "ptbxl.parquet")
    (committed / "PROVENANCE.json").write_text(json.dumps({"ptbxl": {
        **info, "command": "python -m fusion_utils.features.autoencoder real --dataset ptbxl",
        "git_commit": "abc123", "seconds": 12.5, "machine": {"cores": 2},
        "autoencoder": {"code_channels": 64}, "features": {"bn": {}, "ft": {}},
        "history": [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5}]}}))

    out = execute_notebook("10_autoencoder_features", tmp_path / "10.ipynb",
                           {"dataset": "ham10000", "bn_run": str(bn_run), "ft_run": str(ft_run),
                            "manifest_path": str(manifest_path), "max_images": 0,
                            "code_channels": 8, "epochs": 3, "n_bootstrap": 30,
                            "results_dir": str(committed)}, timeout=600)
    text, markdown, html, images = _outputs(nbformat.read(out, as_version=4))
    n_split = manifest["split"].value_counts()
    data_line = next(m for m in markdown if m.startswith("**Data:**"))
    assert (f"**Data:** demo HAM10000 (manifest `{manifest_path}`), 42 records ({n_split['train']} "
            f"train, {n_split['val']} validation, {n_split['test']} test)") in data_line
    assert images == 1  # the loss curve
    maps_line = next(m for m in markdown if m.startswith("Maps 1280 x 7 x 7 per record"))
    assert "3 epochs in" in maps_line and "AE features: 8 per record." in maps_line
    first, last = (float(v) for v in maps_line.split("reconstruction error ")[1]
                   .replace(" after the first epoch, ", " ").split(" after the last")[0].split())
    assert last < first  # the reconstruction improves on the demo images' maps
    live = next(h for h in html if ">ae+meta<" in h and "balanced accuracy" in h)
    for model in (">bn<", ">ft<", ">ae - bn<", ">ft - ae<"):
        assert model in live
    answers = [m for m in markdown if m.startswith("**Answer")]
    assert len(answers) == 2  # live and committed
    assert answers[0].startswith(f"**Answer (demo HAM10000, {n_split['test']} test records):** "
                                 "image only: AE is ")
    # the committed answer is the module's answer to the committed table
    assert answers[1] == ("**Answer (real PTB-XL):** " + ae.answer(metrics) + " Balanced "
                          "accuracy: " + ae.answer(metrics, "sensitivity"))
    real_line = next(m for m in markdown if m.startswith("**Real PTB-XL** (committed)"))
    assert f"{info['n_records']} records, {info['n_train']} train, {info['n_test']} test" \
        in real_line
    assert "reconstruction error 0.900 -> 0.500" in real_line and "`abc123`" in real_line
    assert "**Real HAM10000:** no committed table yet" in "\n".join(markdown)
    assert "1 committed real table(s) shown" in text
