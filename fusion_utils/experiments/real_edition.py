"""The real edition: manifests of the real data, committed grid results, their provenance, and
the build's re-check of part of them.

The real grid (``experiments/real.yaml``) runs the paper's experiment on the real data in
``../shared/data`` (:func:`fusion_utils.paths.shared_data_dir`): the 1,533 PTB-XL records with one
superclass and all 10,015 HAM10000 images at 200x150, with group-aware 70/15/15 splits. Its
collected table is committed as ``results/real/results.parquet`` with ``PROVENANCE.json``; the
book reads them, and the build re-computes a subset and checks it with
:func:`check_against_committed`.

Command line::

    python -m fusion_utils.experiments.real_edition manifests [--data-dir DIR]
    python -m fusion_utils.experiments.real_edition collect [--runs-dir runs/real] [--command ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.paths import project_root, shared_data_dir

__all__ = [
    "BEYOND_THE_PAPER",
    "COMPARED_METRICS",
    "HAM_IMAGE_DIR",
    "OUTSIDE_REFERENCES",
    "RESOLUTION_RUN",
    "SPLIT_SCHEME",
    "TOLERANCE",
    "beyond_the_paper",
    "build_real_manifests",
    "check_against_committed",
    "cohort_sentence",
    "cohort_summary",
    "collect_intervals",
    "collect_real",
    "committed_intervals",
    "committed_resolution",
    "committed_results",
    "compute_resolution",
    "data_checksums",
    "feature_run_facts",
    "gains_sentence",
    "gains_with_intervals",
    "headline",
    "headline_table",
    "machine_description",
    "provenance_markdown",
    "read_provenance",
    "real_grid_table",
    "real_manifest_path",
    "reference_points",
    "write_provenance",
]

SPLIT_SCHEME = "group"
"""Every patient (PTB-XL) or lesion (HAM10000) in one split, stratified 70/15/15."""
HAM_IMAGE_DIR = "images_200x150"
"""The HAM10000 image folder of the real edition: all 10,015 images at 200x150."""
FRACTIONS = (0.7, 0.15, 0.15)
COMPARED_METRICS: tuple[str, ...] = ("auroc_macro", "balanced_accuracy")
TOLERANCE = 0.01
"""Largest absolute difference allowed between a re-computed and the committed metric.

Features are computed in float32 with a thread count that differs between machines, so sums are
reordered; the fused classifier is a deterministic full-batch fit. Differences above 0.01 in
macro AUROC or balanced accuracy mean a changed pipeline, not rounding. A changed classifier
optimiser counts: the unpenalised softmax on features that separate the training records has no
finite optimum, so where the optimiser stops (gradient below ``tol``) depends on its path. On
real HAM10000 (lite0 BN, identical features) two versions of the optimiser gave image-only
macro AUROC 0.7815 and 0.7669, balanced accuracy 0.3695 and 0.3450."""


def results_dir() -> Path:
    """``<root>/results/real``: the committed results of the real grid."""
    return project_root() / "results" / "real"


def real_manifest_path(dataset: str) -> Path:
    """``<root>/cache/manifests/<dataset>_real.parquet``: the ``manifest`` entries of
    ``experiments/real.yaml`` (relative to the project root, whatever ``FUSION_CACHE_DIR`` says)."""
    return project_root() / "cache" / "manifests" / f"{dataset}_real.parquet"


def build_real_manifests(data_dir: str | os.PathLike[str] | None = None, *, seed: int = 0,
                         out: dict[str, str | os.PathLike[str]] | None = None
                         ) -> dict[str, pd.DataFrame]:
    """Build and save the real edition's two manifests.

    Parameters
    ----------
    data_dir : path-like, optional
        Folder with ``ptbxl/`` and ``ham10000/`` (default :func:`shared_data_dir`).
    seed : int
        Seed of the group-aware split.
    out : dict, optional
        ``{dataset: path}`` to write to (default :func:`real_manifest_path`).

    Returns
    -------
    dict
        ``{"ptbxl": manifest, "ham10000": manifest}``.
    """
    from fusion_utils.data.manifest import build_manifest, save_manifest

    base = Path(data_dir) if data_dir else shared_data_dir()
    frames = {}
    for dataset in ("ptbxl", "ham10000"):
        df, report = build_manifest(
            dataset, base / dataset, split_scheme=SPLIT_SCHEME, seed=seed, fractions=FRACTIONS,
            image_dir=HAM_IMAGE_DIR if dataset == "ham10000" else None)
        path = Path((out or {}).get(dataset) or real_manifest_path(dataset))
        save_manifest(df, path)
        print(report, f"\n  -> {path}", file=sys.stderr)
        frames[dataset] = df
    return frames


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_checksums(data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """sha256 of the files that pin the real data: the two tables and ``SHA256SUMS``."""
    base = Path(data_dir) if data_dir else shared_data_dir()
    files = ("ptbxl/ptbxl_database.csv", "ham10000/HAM10000_metadata.csv", "SHA256SUMS")
    return {name: _sha256(base / name) for name in files if (base / name).is_file()}


def machine_description() -> dict[str, Any]:
    """Cores, CPU model (``/proc/cpuinfo``), memory and GPU (``torch.cuda``) of this machine."""
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": cpu, "memory_gib": mem_gib,
            "gpu": gpu or "none", "platform": platform.platform(),
            "python": platform.python_version()}


def committed_results(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The committed results table (``results/real/results.parquet``)."""
    path = Path(path) if path else results_dir() / "results.parquet"
    if not path.is_file():
        raise FileNotFoundError(
            f"committed real results not found: {path}; run experiments/real.yaml and "
            "`python -m fusion_utils.experiments.real_edition collect`")
    return pd.read_parquet(path)


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Macro AUROC and balanced accuracy per configuration and model from a results table.

    Balanced accuracy is the macro mean of the per-class sensitivity (recall), as in
    scikit-learn's ``balanced_accuracy_score``; macro AUROC the macro mean of the one-vs-rest
    AUROCs. Both come from the ``macro_mean`` rows of a results table
    (:mod:`fusion_utils.experiments.results`).

    Returns
    -------
    pandas.DataFrame
        ``config_id``, ``dataset``, ``backbone``, ``mode``, ``augment``, ``model``,
        ``auroc_macro``, ``balanced_accuracy``; one row per configuration and model.
    """
    need = ["config_id", "metric", "class", "model", "value"]
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {', '.join(missing)}")
    rows = results[(results["class"] == "macro_mean")
                   & results["metric"].astype(str).isin(["auroc", "sensitivity"])]
    ids = [c for c in ("config_id", "dataset", "backbone", "mode", "augment", "model")
           if c in rows.columns]
    table = rows.assign(metric=rows["metric"].astype(str)).pivot_table(
        index=ids, columns="metric", values="value", aggfunc="first", observed=True)
    table = table.rename(columns={"auroc": "auroc_macro", "sensitivity": "balanced_accuracy"})
    table.columns.name = None
    return table.reset_index()


OUTSIDE_REFERENCES: tuple[dict[str, Any], ...] = (
    {"source": "Gessert et al. 2020, ISIC 2019 winners (arXiv 1910.03910)",
     "dataset": "ham10000", "metric": "balanced_accuracy", "image": 0.636, "fused": 0.634,
     "note": "ensemble of EfficientNets, hidden ISIC 2019 test set (8 classes + unknown): "
             "task 1 (images) 63.6%, task 2 (images + age, sex, site) 63.4%"},
    {"source": "Thomas et al., EMBC 2021 (companion paper)", "dataset": "both",
     "metric": None, "image": None, "fused": None,
     "note": "VGG16 is the network for which the metadata did not help"},
)
"""Outside reference points for the real results: published figures on related data."""


def reference_points(results: pd.DataFrame) -> pd.DataFrame:
    """The outside references beside this grid's own image-only and fused figures.

    For each reference with a metric, the rows of :func:`headline` for its dataset (every
    configuration) are summarised as the median and range over configurations, so a reader
    sees whether metadata changed this grid's figure as much as the reference's.
    """
    own = headline(results)
    rows = []
    for ref in OUTSIDE_REFERENCES:
        row = {"source": ref["source"], "dataset": ref["dataset"], "metric": ref["metric"],
               "reference_image": ref["image"], "reference_fused": ref["fused"],
               "note": ref["note"]}
        if ref["metric"] and ref["dataset"] in set(own.get("dataset", [])):
            mine = own[own["dataset"] == ref["dataset"]].pivot_table(
                index="config_id", columns="model", values=ref["metric"])
            delta = (mine["fused"] - mine["image"]).dropna()
            row.update(this_grid_image_median=float(mine["image"].median()),
                       this_grid_fused_median=float(mine["fused"].median()),
                       this_grid_gain_min=float(delta.min()),
                       this_grid_gain_max=float(delta.max()),
                       this_grid_configurations=len(delta))
        rows.append(row)
    return pd.DataFrame(rows)


BEYOND_THE_PAPER: dict[str, str] = {"meta_embedding": "09 meta-embeddings",
                                    "autoencoder": "10 auto-encoder features"}
"""Committed tables of the later chapters (``results/real/<name>/<dataset>.parquet``)."""


def beyond_the_paper(dataset: str, results: pd.DataFrame | None = None,
                     out_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Macro AUROC and balanced accuracy of the later chapters' models on one real dataset,
    with their bootstrap CIs, beside the grid's best configuration (by image-only macro AUROC).

    Reads the committed tables of :data:`BEYOND_THE_PAPER` (their ``metric`` ``auroc`` and
    ``sensitivity`` rows: macro means with ``ci_low``/``ci_high``); a chapter without a table
    for ``dataset`` is left out. Returns ``chapter``, ``model``, ``metadata``, ``auroc_macro``,
    ``auroc_ci``, ``balanced_accuracy``, ``balanced_accuracy_ci``.
    """
    base = Path(out_dir) if out_dir else results_dir()
    rows: list[dict[str, Any]] = []
    if results is not None and len(results):
        h = headline(results)
        h = h[h["dataset"] == dataset]
        if len(h):
            image = h[h["model"] == "image"].sort_values("auroc_macro", ascending=False)
            best = image.iloc[0]["config_id"]
            for _, r in h[h["config_id"] == best].iterrows():
                rows.append({"chapter": "08 the grid's best configuration", "model": best,
                             "metadata": "yes" if r["model"] == "fused" else "no",
                             "auroc_macro": r["auroc_macro"], "auroc_ci": "",
                             "balanced_accuracy": r["balanced_accuracy"],
                             "balanced_accuracy_ci": ""})
    for name, chapter in BEYOND_THE_PAPER.items():
        path = base / name / f"{dataset}.parquet"
        if not path.is_file():
            continue
        t = pd.read_parquet(path)
        for (model, meta), block in t.groupby(["model", "metadata"], sort=False):
            by = block.set_index("metric")
            if not {"auroc", "sensitivity"} <= set(by.index):
                continue

            def ci(metric: str, frame: pd.DataFrame = by) -> str:
                return f"[{frame.loc[metric, 'ci_low']:.3f}, {frame.loc[metric, 'ci_high']:.3f}]"

            rows.append({"chapter": chapter, "model": model, "metadata": meta,
                         "auroc_macro": by.loc["auroc", "estimate"], "auroc_ci": ci("auroc"),
                         "balanced_accuracy": by.loc["sensitivity", "estimate"],
                         "balanced_accuracy_ci": ci("sensitivity")})
    return pd.DataFrame(rows, columns=["chapter", "model", "metadata", "auroc_macro", "auroc_ci",
                                       "balanced_accuracy", "balanced_accuracy_ci"])


def check_against_committed(recomputed: pd.DataFrame, committed: pd.DataFrame, *,
                            metrics: Sequence[str] = COMPARED_METRICS,
                            tolerance: float = TOLERANCE,
                            keys: Sequence[str] = ("config_id", "model")) -> pd.DataFrame:
    """Compare re-computed results with the committed table; raise when they disagree.

    Parameters
    ----------
    recomputed, committed : pandas.DataFrame
        Results tables as ``collect`` writes them (long: one row per configuration, metric,
        class and model); compared through :func:`headline`.
    metrics : sequence of str
        Headline columns compared (default macro AUROC and balanced accuracy).
    tolerance : float
        Largest allowed absolute difference (:data:`TOLERANCE`).
    keys : sequence of str
        Columns identifying a row.

    Returns
    -------
    pandas.DataFrame
        One row per compared row and metric: ``committed``, ``recomputed``, ``difference``.

    Raises
    ------
    ValueError
        Nothing to compare, a re-computed row has no committed counterpart, or a difference
        exceeds ``tolerance`` (the message lists the offending rows).
    """
    keys = list(keys)
    new_h, old_h = headline(recomputed), headline(committed)
    if new_h.empty:
        raise ValueError("the re-computed results table has no macro_mean rows to compare")
    for name, table in (("recomputed", new_h), ("committed", old_h)):
        missing = [c for c in [*keys, *metrics] if c not in table.columns]
        if missing:
            raise ValueError(f"{name} results lack column(s) {', '.join(missing)}")
    merged = new_h[[*keys, *metrics]].merge(
        old_h[[*keys, *metrics]], on=keys, how="left", suffixes=("_new", "_committed"),
        indicator=True)
    absent = merged.loc[merged["_merge"] != "both", keys]
    if len(absent):
        raise ValueError("re-computed rows absent from the committed table: "
                         + "; ".join("/".join(map(str, r)) for r in absent.to_numpy()))
    rows = []
    for metric in metrics:
        new = merged[f"{metric}_new"].astype(float).to_numpy()
        old = merged[f"{metric}_committed"].astype(float).to_numpy()
        for i in range(len(merged)):
            rows.append({**{k: merged[k].iloc[i] for k in keys}, "metric": metric,
                         "committed": old[i], "recomputed": new[i],
                         "difference": abs(new[i] - old[i])})
    report = pd.DataFrame(rows)
    bad = report[~(report["difference"] <= tolerance)]  # NaN differences fail too
    if len(bad):
        raise ValueError(
            f"re-computed results differ from the committed table by more than {tolerance}: "
            + "; ".join(f"{'/'.join(str(r[k]) for k in keys)} {r['metric']}: committed "
                        f"{r['committed']:.4f}, re-computed {r['recomputed']:.4f}"
                        for _, r in bad.iterrows())
            + ". If the pipeline changed on purpose, re-run the committed configurations with "
              "the new code (python -m fusion_utils.experiments run experiments/real.yaml "
              "--only '<ids>' --from-stage 04_fusion refits the classifiers from the stored "
              "features) and collect them again (python -m "
              "fusion_utils.experiments.real_edition collect)")
    return report


def write_provenance(results: pd.DataFrame, status: pd.DataFrame | None, *, command: str,
                     out_dir: str | os.PathLike[str] | None = None,
                     data_dir: str | os.PathLike[str] | None = None,
                     not_run: Sequence[str] = (), notes: str = "") -> Path:
    """Write ``results.parquet`` and ``PROVENANCE.json`` into ``out_dir`` (atomically)."""
    import subprocess

    from fusion_utils.io import atomic_path

    out = Path(out_dir) if out_dir else results_dir()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.parquet", suffix=".parquet") as tmp:
        results.to_parquet(tmp, index=False)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=project_root(), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    timings: list[dict[str, Any]] = []
    if status is not None and len(status):
        for _, row in status.iterrows():
            timings.append({k: (None if pd.isna(v) else (v.item() if isinstance(v, np.generic)
                                                         else v))
                            for k, v in row.items()})
    started = [t.get("started") for t in timings if t.get("started")]
    finished = [t.get("finished") for t in timings if t.get("finished")]
    commit_at_start = None
    if started:
        try:
            commit_at_start = subprocess.run(
                ["git", "rev-list", "-1", f"--before={min(map(str, started))}", "HEAD"],
                capture_output=True, text=True, cwd=project_root(), check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit_at_start = None
    provenance = {
        "command": command, "git_commit": commit, "git_commit_at_start": commit_at_start,
        "data_dir": str(Path(data_dir) if data_dir else shared_data_dir()),
        "data_checksums_sha256": data_checksums(data_dir),
        "machine": machine_description(),
        "start": min(map(str, started)) if started else None,
        "end": max(map(str, finished)) if finished else None,
        "configurations": timings, "not_yet_run": list(not_run), "notes": notes,
        "cohorts": cohort_summary(),
        "split_scheme": SPLIT_SCHEME, "fractions": list(FRACTIONS),
        "ham10000_image_dir": HAM_IMAGE_DIR,
    }
    with atomic_path(out / "PROVENANCE.json", suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return out / "PROVENANCE.json"


def collect_real(runs_dir: str | os.PathLike[str] | None = None, *, command: str,
                 grid_file: str | os.PathLike[str] | None = None,
                 out_dir: str | os.PathLike[str] | None = None, notes: str = "") -> Path:
    """Collect the real grid's completed runs into ``results/real`` with their provenance.

    Writes ``results.parquet``, ``PROVENANCE.json`` and ``bootstrap_ci.parquet`` (every run's
    bootstrap CIs, :func:`collect_intervals`).

    Per-configuration timings come from each run's ``status.json`` (``started``, ``finished``,
    ``seconds`` and the seconds of each notebook stage); the grid's configurations that are not
    done are listed as not yet run.
    """
    from fusion_utils.experiments.results import collect, read_status
    from fusion_utils.experiments.spec import load_grid

    root = project_root()
    runs = Path(runs_dir) if runs_dir else root / "runs" / "real"
    grid = load_grid(Path(grid_file) if grid_file else root / "experiments" / "real.yaml",
                     resolve_notebooks=False)
    results = collect(runs)
    rows, not_run = [], []
    for config in grid.configurations:
        st = read_status(runs / config.config_id)
        if st.get("state") != "done":
            not_run.append(f"{config.config_id} ({st.get('state', 'pending')})")
            continue
        rows.append({"config_id": config.config_id, "state": st.get("state"),
                     "started": st.get("started"), "finished": st.get("finished"),
                     "seconds": st.get("seconds"), "threads": st.get("threads"),
                     "host": st.get("host"),
                     "stages": json.dumps(st.get("stages") or {}, sort_keys=True),
                     "stages_resumed_from": json.dumps(st.get("resumed") or {}, sort_keys=True),
                     **feature_run_facts(runs / config.config_id)})
    status = pd.DataFrame(rows)
    from fusion_utils.io import atomic_path

    intervals = collect_intervals(runs, [r["config_id"] for r in rows])
    out = Path(out_dir) if out_dir else results_dir()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "bootstrap_ci.parquet", suffix=".parquet") as tmp:
        intervals.to_parquet(tmp, index=False)
    return write_provenance(results, status, command=command, out_dir=out_dir,
                            not_run=not_run, notes=notes)


def feature_run_facts(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Where and how fast a run's features were made: device, weights tag, images per second.

    ``extraction_images_per_second`` is notebook 03's figure; ``finetune_images_per_second``
    counts the training images seen (epochs x training split) over the fine-tuning seconds
    (validation passes included in the time). Read through :class:`RunFolder`.
    """
    from fusion_utils.run_folder import RunFolder

    run = RunFolder(run_dir)
    facts: dict[str, Any] = {}
    if run.has("feature_timings.json"):
        t = run.read_feature_timings()
        facts.update(feature_device=t.get("device"), extraction_seconds=t.get("extraction_s"),
                     extraction_images_per_second=t.get("images_per_second"),
                     finetune_seconds=t.get("fine_tuning_s"))
    if run.has("run.json"):
        info = run.read_run_json()
        feats = info["stages"].get("features", {}).get("parameters", {})
        facts["weights_tag"] = feats.get("weights_tag")
        ft_s = facts.get("finetune_seconds") or 0.0
        if feats.get("mode") == "ft" and ft_s > 0:
            n_train = _n_train(run, feats.get("manifest_path"), info.get("dataset", ""))
            if n_train:
                facts["finetune_images_per_second"] = feats.get("epochs", 0) * n_train / ft_s
    return facts


def _n_train(run: Any, recorded: str | None, dataset: str) -> int:
    """Training images of a run: its manifest's (the one it recorded, else the real one for its
    dataset; a run made elsewhere records a path of that machine), else the scored rows'."""
    from fusion_utils.data.manifest import load_manifest

    for path in (recorded, real_manifest_path(dataset) if dataset else None):
        if path and Path(path).is_file():
            return int((load_manifest(path)["split"] == "train").sum())
    if run.has("predictions.parquet"):
        return int((run.read_table("predictions.parquet", ["split"])["split"] == "train").sum())
    return 0


def cohort_summary(manifests: dict[str, str | os.PathLike[str]] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Size, classes, splits, split scheme and image folder of each real manifest present."""
    from fusion_utils.data.manifest import load_manifest

    out: dict[str, dict[str, Any]] = {}
    for dataset in ("ptbxl", "ham10000"):
        path = Path((manifests or {}).get(dataset) or real_manifest_path(dataset))
        if not path.is_file():
            continue
        df = load_manifest(path)
        out[dataset] = {
            "manifest": str(path), "n_records": len(df),
            "n_groups": int(df["group"].nunique()),
            "classes": {str(k): int(v) for k, v in df["label"].value_counts().items()},
            "splits": {str(k): int(v) for k, v in df["split"].value_counts().items()},
            "split_scheme": df.attrs.get("split_scheme"),
            "image_dir": df.attrs.get("image_dir"),
            "image_resolution": df.attrs.get("image_resolution"),
        }
    return out


def read_provenance(results_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``PROVENANCE.json`` beside a results table, or ``None`` when there is none."""
    path = Path(results_path).parent / "PROVENANCE.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


_NAMES = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}
_GROUPS = {"ptbxl": "patients", "ham10000": "lesions"}


def cohort_sentence(provenance: dict[str, Any]) -> str:
    """E.g. "real PTB-XL (1,533 records, ...) and real HAM10000 (10,015 images at 200x150 ...)"."""
    parts = []
    for dataset, c in (provenance.get("cohorts") or {}).items():
        unit = "images" if dataset == "ham10000" else "records"
        res = c.get("image_resolution")
        at = f" at {res[0]}x{res[1]}" if res else ""
        splits = c.get("splits", {})
        parts.append(
            f"real {_NAMES.get(dataset, dataset)} ({c['n_records']:,} {unit}{at}, "
            f"{c['n_groups']:,} {_GROUPS.get(dataset, 'groups')}; {c.get('split_scheme')} split "
            f"train/val/test {splits.get('train', 0):,}/{splits.get('val', 0):,}/"
            f"{splits.get('test', 0):,})")
    return " and ".join(parts) if parts else "the real data"


def provenance_markdown(provenance: dict[str, Any]) -> str:
    """A short Markdown account of a committed results table's provenance."""
    machine = provenance.get("machine") or {}
    configs = provenance.get("configurations") or []
    lines = [
        f"**Source:** committed results of {len(configs)} configuration(s) on "
        f"{cohort_sentence(provenance)}.",
        f"- command: `{provenance.get('command')}`",
        f"- git commit: `{provenance.get('git_commit')}` when collected (HEAD at the start: "
        f"`{provenance.get('git_commit_at_start')}`); ran from {provenance.get('start')} "
        f"to {provenance.get('end')}",
        f"- machine: {machine.get('cores')} cores, {machine.get('cpu_model')}, GPU "
        f"{machine.get('gpu')}",
        "- data (sha256): " + ", ".join(f"`{k}` {v[:12]}..." for k, v in
                                        (provenance.get("data_checksums_sha256") or {}).items()),
    ]
    if configs:
        lines.append("- minutes per configuration: " + ", ".join(
            f"{c['config_id']} {float(c['seconds']) / 60:.1f}" for c in configs
            if c.get("seconds") is not None))
    if provenance.get("not_yet_run"):
        lines.append("- not yet run: " + ", ".join(provenance["not_yet_run"]))
    if provenance.get("notes"):
        lines.append(f"- notes: {provenance['notes']}")
    return "\n".join(lines)


def headline_table(results: pd.DataFrame) -> pd.DataFrame:
    """Image-only vs fused macro AUROC and balanced accuracy, one row per configuration."""
    h = headline(results)
    idx = [c for c in ("dataset", "backbone", "mode", "augment") if c in h.columns]
    table = h.pivot_table(index=idx, columns="model",
                          values=["auroc_macro", "balanced_accuracy"], observed=True)
    for metric in ("auroc_macro", "balanced_accuracy"):
        if (metric, "fused") in table.columns and (metric, "image") in table.columns:
            table[(metric, "fused - image")] = table[(metric, "fused")] - table[(metric, "image")]
    return table.sort_index(axis=1)


INTERVAL_METRICS = {"auroc": "macro AUROC", "sensitivity": "balanced accuracy"}
"""Metrics of the gains table with CIs (notebook 05's names -> the book's)."""


def collect_intervals(runs_dir: str | os.PathLike[str],
                      config_ids: Sequence[str]) -> pd.DataFrame:
    """Each run's bootstrap CIs (notebook 05's ``bootstrap_ci.parquet``) in one table.

    Parameters
    ----------
    runs_dir : path-like
        Folder of the run folders.
    config_ids : sequence of str
        The configurations to collect (the completed ones).

    Returns
    -------
    pandas.DataFrame
        ``config_id, dataset, backbone, mode, augment, n_test`` and notebook 05's columns
        ``metric, model, estimate, ci_low, ci_high, n_bootstrap``; model ``"fused - image"``
        is the paired difference (same resamples).

    Raises
    ------
    FileNotFoundError
        A run folder without ``bootstrap_ci.parquet`` (named).
    """
    from fusion_utils.run_folder import RunFolder

    frames = []
    for config_id in config_ids:
        run = RunFolder(Path(runs_dir) / config_id)
        ci = run.read_table("bootstrap_ci.parquet")
        columns = run.read_status().get("columns") or {}
        predictions = run.read_table("predictions.parquet", ["record_id", "split"])
        test = predictions[predictions["split"].eq("test")]
        ci.insert(0, "config_id", config_id)
        for i, key in enumerate(("dataset", "backbone", "mode", "augment"), start=1):
            ci.insert(i, key, columns.get(key))
        ci.insert(5, "n_test", int(test["record_id"].nunique()))
        frames.append(ci)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def committed_intervals(path: str | os.PathLike[str] | None = None) -> pd.DataFrame | None:
    """The committed CIs (``results/real/bootstrap_ci.parquet``), or None when absent."""
    path = Path(path) if path else results_dir() / "bootstrap_ci.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def gains_with_intervals(intervals: pd.DataFrame) -> pd.DataFrame:
    """Image-only, fused and their paired difference with 95% CIs, per configuration.

    One row per configuration and metric (:data:`INTERVAL_METRICS`): the estimates on the test
    split, ``gain`` = fused - image with its paired bootstrap CI (``gain_low``, ``gain_high``),
    ``ci_excludes_0`` (``above``, ``below`` or empty), ``n_test`` and ``n_bootstrap``.
    """
    keep = intervals[intervals["metric"].isin(list(INTERVAL_METRICS))]
    idx = ["config_id", "dataset", "backbone", "mode", "augment", "n_test", "metric"]
    wide = keep.pivot_table(index=idx, columns="model",
                            values=["estimate", "ci_low", "ci_high", "n_bootstrap"],
                            observed=True, sort=False)
    out = pd.DataFrame({
        "image": wide[("estimate", "image")], "fused": wide[("estimate", "fused")],
        "gain": wide[("estimate", "fused - image")],
        "gain_low": wide[("ci_low", "fused - image")],
        "gain_high": wide[("ci_high", "fused - image")],
        "n_bootstrap": wide[("n_bootstrap", "fused - image")].astype(int)}).reset_index()
    out["metric"] = out["metric"].map(INTERVAL_METRICS)
    out["ci_excludes_0"] = np.select([out["gain_low"] > 0, out["gain_high"] < 0],
                                     ["above", "below"], "")
    return out.sort_values(["dataset", "metric", "backbone", "mode", "augment"],
                           ignore_index=True)


def gains_sentence(gains: pd.DataFrame) -> str:
    """Per dataset and metric: how many configurations' gain CIs lie above / below zero."""
    parts = []
    for (dataset, metric), g in gains.groupby(["dataset", "metric"], sort=True):
        n_test = ", ".join(f"{n:,}" for n in sorted(g["n_test"].unique()))
        parts.append(f"{dataset} {metric}: the 95% CI of the gain is above 0 for "
                     f"{(g['ci_excludes_0'] == 'above').sum()} of {len(g)} configurations and "
                     f"below 0 for {(g['ci_excludes_0'] == 'below').sum()} ({n_test} test "
                     "records)")
    n_boot = ", ".join(str(n) for n in sorted(gains["n_bootstrap"].unique()))
    return ("; ".join(parts) + f". Test: paired, class-stratified percentile bootstrap of the "
            f"test split ({n_boot} resamples; both classifiers scored on the same resamples).")


RESOLUTION_RUN = "ham10000-efficientnet_lite0-bn-noaug"
"""The real run whose image-only classifier the resolution comparison uses."""


def compute_resolution(data_dir: str | os.PathLike[str] | None = None, *,
                       runs_dir: str | os.PathLike[str] | None = None,
                       out_dir: str | os.PathLike[str] | None = None) -> Path:
    """The 600x450 vs 200x150 comparison on the HAM10000 images present at both resolutions,
    written to ``results/real/resolution.json`` (summary, with the figures per split) and
    ``resolution_per_image.parquet``.

    Features: ``efficientnet_lite0`` BN on each copy; predictions: the image-only classifier of
    :data:`RESOLUTION_RUN` (trained on the 200x150 training split); splits: its manifest's.
    """
    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.features.resolution import compare_resolutions
    from fusion_utils.io import atomic_path

    ham = Path(data_dir) if data_dir else shared_data_dir() / "ham10000"
    run = (Path(runs_dir) if runs_dir else project_root() / "runs" / "real") / RESOLUTION_RUN
    splits = load_manifest(real_manifest_path("ham10000")).set_index("record_id")["split"]
    result = compare_resolutions(ham, classifier=run / "classifier_image.npz",
                                 splits=splits.rename(index=str))
    out = Path(out_dir) if out_dir else results_dir()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "resolution_per_image.parquet", suffix=".parquet") as tmp:
        result.per_image.to_parquet(tmp, index=False)
    record = {**result.summary, "sentence": result.sentence(), "classifier_run": RESOLUTION_RUN,
              "command": "python -m fusion_utils.experiments.real_edition resolution",
              "data_checksums_sha256": data_checksums(ham.parent)}
    with atomic_path(out / "resolution.json", suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out / "resolution.json"


def real_grid_table(real_results_path: str | os.PathLike[str] = "",
                    main_results_path: str | os.PathLike[str] = "",
                    ) -> tuple[pd.DataFrame | None, Path | None, str]:
    """The committed real grid for chapter 08's own section, unless it is the chapter's main table.

    ``real_results_path``: empty for ``results/real/results.parquet``, ``"none"`` to skip.
    Returns ``(table, path, note)``: the table and its path, or ``None`` and a sentence saying why
    there is none (skipped or not committed, or already the main table ``main_results_path``).
    """
    missing = ("No committed real-grid results (results/real/results.parquet): run "
               "experiments/real.yaml and `python -m fusion_utils.experiments.real_edition "
               "collect`.")
    if str(real_results_path).lower() == "none":
        return None, None, missing
    path = Path(real_results_path) if str(real_results_path) else results_dir() / "results.parquet"
    if not path.is_file():
        return None, path, missing
    if str(main_results_path) and Path(main_results_path).resolve() == path.resolve():
        return None, path, "The real grid's table is this chapter's main table (see above)."
    return pd.read_parquet(path), path, ""


def committed_resolution(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The committed resolution comparison (``results/real/resolution.json``), or ``None``."""
    path = Path(path) if path else results_dir() / "resolution.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.experiments.real_edition",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    man = sub.add_parser("manifests", help="build the real edition's two manifests")
    man.add_argument("--data-dir", default="")
    col = sub.add_parser("collect", help="collect runs/real into results/real with provenance")
    col.add_argument("--runs-dir", default="")
    col.add_argument("--command", required=True, help="the command that ran the grid")
    col.add_argument("--notes", default="")
    res = sub.add_parser("resolution", help="600x450 vs 200x150 HAM10000 comparison")
    res.add_argument("--data-dir", default="", help="HAM10000 folder with both image folders")
    args = parser.parse_args(argv)
    if args.cmd == "manifests":
        build_real_manifests(args.data_dir or None)
    elif args.cmd == "resolution":
        print(compute_resolution(args.data_dir or None))
    else:
        path = collect_real(args.runs_dir or None, command=args.command, notes=args.notes)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
