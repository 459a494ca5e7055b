"""Notebooks 06 (interpretability) and 07 (metadata only), executed with papermill.

Notebook 06 runs on two tiny synthetic run folders written in the ARCHITECTURE.md formats by the
project's own writers (RunFolder, fusion.write_run, manifest.save_manifest). Notebook 07
runs on a tiny demo cohort, and on the full real tables in ../shared/data when they are present.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from fusion_utils import interpret
from fusion_utils.notebook_runner import execute_notebook

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


def _outputs(nb_path: Path) -> tuple[str, int]:
    """All text outputs of an executed notebook joined, and the number of figures."""
    nb = nbformat.read(nb_path, as_version=4)
    texts, figures = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out["text"])
            data = out.get("data", {})
            figures += any(k.endswith("image/png") for k in data)  # glued figures too
            for kind in ("text/markdown", "text/plain"):
                if kind in data:
                    texts.append(data[kind])
    return "\n".join(texts), figures


def _synthetic_manifest(n: int = 150, seed: int = 0) -> pd.DataFrame:
    from fusion_utils.data.splits import stratified_split

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    labels = np.array(CLASSES)[y]
    dates = pd.Timestamp("1990-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    df = pd.DataFrame({
        "record_id": [str(i + 1) for i in range(n)],
        "dataset": "ptbxl",
        "label": labels,
        "path": [f"/nowhere/{i}" for i in range(n)],
        "group": [str(i) for i in range(n)],
        "split": stratified_split(labels, seed=seed),
        "meta.age": rng.normal(60, 15, n).round() + 3 * y,
        "meta.sex": (rng.random(n) < 0.3 + 0.1 * y).astype(int),
        "meta.height": np.where(rng.random(n) < 0.6, np.nan, rng.normal(170, 10, n).round()),
        "meta.recording_date": dates.strftime("%Y-%m-%d %H:%M:%S"),
    })
    df.attrs.update(dataset="ptbxl", classes=CLASSES, split_scheme="stratified", seed=seed)
    return df


def _write_run(run: Path, manifest: pd.DataFrame, backbone: str, seed: int) -> None:
    from fusion_utils.features.extraction import FeatureSet
    from fusion_utils.fusion import train as fusion
    from fusion_utils.run_folder import RunFolder

    rng = np.random.default_rng(seed)
    y = np.array([CLASSES.index(c) for c in manifest["label"]])
    d = 24
    X = np.maximum(rng.normal(size=(len(manifest), d)) + 0.7 * rng.normal(size=(5, d))[y], 0)
    fs = FeatureSet(ids=manifest["record_id"].to_numpy(), labels=manifest["label"].to_numpy(),
                    split=manifest["split"].to_numpy(), X=X.astype(np.float32),
                    feature_names=FeatureSet.names(d),
                    info={"dataset": "ptbxl", "backbone": backbone, "mode": "ft", "augment": True})
    folder = RunFolder(run)
    folder.write_features(fs)  # what notebook 03 writes: features.npz and its run.json stage
    folder.record("features", {"backbone": backbone, "mode": "ft", "augment": True},
                  dataset="ptbxl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fusion.train_image_and_fused(fs, manifest, classifier_params={"l2": 1e-3})
    fusion.write_run(run, result, fs.info)


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    from fusion_utils.data.manifest import save_manifest

    root = tmp_path_factory.mktemp("runs06")
    manifest = _synthetic_manifest()
    mpath = save_manifest(manifest, root / "manifest.parquet")
    runs = [root / "ptbxl-netA-ft-aug", root / "ptbxl-netB-ft-aug"]
    for i, (run, bb) in enumerate(zip(runs, ("netA", "netB"), strict=True)):
        _write_run(run, manifest, bb, seed=i)
    return runs, mpath


def test_synthetic_run_rebuilds_exactly(synthetic_runs):
    """The run folder's fused matrix is rebuilt from features + manifest, and date parts group."""
    from fusion_utils.data.manifest import load_manifest

    runs, mpath = synthetic_runs
    data = interpret.load_fused_data(runs[0], load_manifest(mpath))
    assert data.encoding == "paper"
    assert data.max_abs_diff < 1e-9
    groups = interpret.feature_groups(data.feature_names, data.metadata_columns)
    assert list(groups) == ["age", "sex", "height", "recording_date"]
    assert len(groups["recording_date"]) == 6


def test_rebuild_refuses_a_manifest_without_the_runs_columns(synthetic_runs):
    from fusion_utils.data.manifest import load_manifest

    runs, mpath = synthetic_runs
    manifest = load_manifest(mpath).drop(columns=["meta.height"])
    with pytest.raises(KeyError, match="manifest_path"):
        interpret.load_fused_data(runs[0], manifest)


def test_notebook_06_on_synthetic_runs(synthetic_runs, tmp_path):
    runs, mpath = synthetic_runs
    out = execute_notebook("06_interpretability", tmp_path / "06.ipynb", {
        "run_dirs": ",".join(map(str, runs)), "manifest_path": str(mpath), "main_run": runs[1].name,
        "n_repeats": 2, "n_bootstrap": 10, "seed": 0})
    text, figures = _outputs(out)
    assert figures == 5  # Fig. 5, Fig. 6, raw vs standardised, Fig. 5 standardised, importance
    assert "shuffling all image features costs" in text  # interpret.reading_summary
    main = interpret.load_run(runs[1])
    assert "**Main run:** netB FT aug" in text
    t = interpret.weight_scale_table(main.image, main.fused)
    ratio = float(t.loc[t["class"] == "all", "ratio"].iloc[0])
    assert f"**{ratio:.3g}**" in text
    diff = float(re.search(r"largest difference from the stored predictions: (\S+)", text)
                 .group(1))
    assert diff < 1e-9
    # the six date parts are permuted and dropped as one column, never one by one
    assert "recording_date" in text and "recording_date.year" not in text.split("rebuilt")[1]
    assert "mean pairwise correlation between runs" in text


def _run_07(tmp_path: Path, params: dict) -> tuple[pd.DataFrame, str]:
    res = tmp_path / "auroc.parquet"
    out = execute_notebook("07_metadata_only", tmp_path / "07.ipynb",
                           {**params, "results_path": str(res)})
    text, figures = _outputs(out)
    assert figures == 3  # macro AUROC intervals, per-class AUROC, permutation importance
    return pd.read_parquet(res), text


def test_notebook_07_on_demo_cohort(demo_cohort, tmp_path):
    table, text = _run_07(tmp_path, {"dataset": "ptbxl", "data_dir": str(demo_cohort / "ptbxl"),
                                     "n_bootstrap": 10, "encodings": "paper", "n_repeats": 2})
    assert set(table["data"]) == {"demo"}
    assert "synthetic demo cohort" in text
    assert list(table["column_set"]) == list(interpret.DEFAULT_COLUMN_SETS["ptbxl"])
    assert (table["ci_low"] <= table["auroc"]).all() and (table["auroc"] <= table["ci_high"]).all()
    assert "groups in more than one split: 0" in text
    # the summary (interpret.metadata_only_summary) quotes the table's own numbers
    first = table.iloc[0]
    assert (f"- `{first['column_set']}` [paper]: macro AUROC **{first['auroc']:.3f} "
            f"[{first['ci_low']:.3f}, {first['ci_high']:.3f}]**") in text


def test_notebook_07_real_ptbxl(shared_ptbxl, tmp_path):
    table, text = _run_07(tmp_path, {"dataset": "ptbxl", "data_dir": str(shared_ptbxl),
                                     "n_bootstrap": 20, "encodings": "paper", "n_repeats": 1})
    assert set(table["data"]) == {"real"}
    assert (table["n_records"] == 16272).all()  # single-superclass records of the full table
    assert table["auroc"].between(0.5, 1.0).all()
    a = table.set_index("column_set")["auroc"]
    assert a["patient"] > 0.6  # age and sex know a lot about the superclass
    assert a["acquisition"] > 0.5
    assert "groups in more than one split: 0" in text


def test_notebook_07_real_ham10000(shared_ham, tmp_path):
    table, text = _run_07(tmp_path, {"dataset": "ham10000", "data_dir": str(shared_ham),
                                     "n_bootstrap": 20, "encodings": "paper", "n_repeats": 1})
    assert set(table["data"]) == {"real"} and (table["n_records"] == 10015).all()
    assert table["auroc"].between(0.5, 1.0).all()
    t = table.set_index("column_set")
    leak = "patient+dx_type (label leak)"
    assert bool(t.loc[leak, "label_leak"]) and not bool(t.loc["patient", "label_leak"])
    assert t.loc[leak, "auroc"] > t.loc["patient", "ci_high"]  # the leak lifts the score
    assert "label leak: not a baseline" in text
