"""A grid's results: each run's tidy table, the state of every run, and the collected table.

``<runs-dir>/<config-id>/`` is a run folder (written by :mod:`fusion_utils.experiments.runner`);
its ``status.json`` records the run's state (``pending``, ``running``, ``done``, ``failed``) and
its ``results.parquet`` the run's results. :func:`collect` concatenates the ``results.parquet``
of every completed run; :func:`load_results` is what notebook 08 calls.

Results table
-------------
Columns, in order (:data:`RESULT_COLUMNS`, with any extra axis of the grid after ``seed``):

========================  =======================================================================
``grid``                  grid name
``config_id``             configuration id
``dataset``               ``ptbxl`` or ``ham10000``
``backbone``              CNN name (``efficientnet_lite0``, ``alexnet``, ...)
``weights``               weights name (``imagenet``, a path, ...)
``mode``                  ``bn`` (bottleneck features) or ``ft`` (fine-tuned)
``augment``               bool, augmentation on
``epochs``                FT epochs (as configured; BN ignores it)
``seed``                  random seed
``metric``                ``accuracy``, ``specificity``, ..., ``auroc`` (as notebook 05 names them)
``class``                 a class name, ``macro_mean`` or ``macro_std``
``model``                 ``image`` (image features only) or ``fused`` (image + metadata)
``with_metadata``         bool, ``model == "fused"``
``value``                 the metric's value as notebook 05 reports it
``p_value``               DeLong p-value of fused vs image AUROC on that class (rows with
                          ``metric == "auroc"``, ``model == "fused"`` and a class name), else NaN
``stars``                 ``*`` (p <= 0.10), ``**`` (p <= 0.05) or empty, on the same rows
``training``              the classifiers' training, ``converged`` or ``paper`` (notebook 04's
                          ``training``; from ``run.json``, an older run's solver ``lbfgs`` reads
                          ``converged``)
``fit_seconds_image``     seconds of the image-only classifier's fit (``timings.json``)
``fit_seconds_fused``     seconds of the fused classifier's fit (``timings.json``)
``extraction_seconds``    seconds of feature extraction (``feature_timings.json``, else
                          ``timings.json``; on a cache hit, the time of the run that computed them)
``finetune_seconds``      seconds of fine-tuning (0 for BN; same files)
``image_weight_ratio``    the paper's Fig. 5 statistic: median ``|w|`` of the image-feature
                          weights of the image-only classifier over that of the fused one
                          (:func:`fusion_utils.interpret.weights.weight_scale_table`, row
                          ``all``; read from ``classifier_{image,fused}.npz``)
========================  =======================================================================

The last six (:data:`RUN_COLUMNS`) hold one value per configuration, repeated on its rows; they
are NaN (``training``: None) when a run folder lacks the file they come from. :func:`collect`
derives them from the run folder when a run's ``results.parquet`` predates them, and
:func:`add_run_columns` adds them to an already collected table (command line:
``python -m fusion_utils.experiments.results add-run-columns TABLE RUNS_DIR``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_utils.experiments.spec import CONFIG_COLUMNS, load_grid
from fusion_utils.io import atomic_path
from fusion_utils.paths import project_root
from fusion_utils.paths import runs_dir as default_runs_root
from fusion_utils.run_folder import RunFolder, RunFolderError

__all__ = ["RESULT_COLUMNS", "RUN_COLUMNS", "add_run_columns", "collect", "grid_status",
           "load_results", "read_status", "results_table", "run_columns"]

RUN_COLUMNS: tuple[str, ...] = (
    "training", "fit_seconds_image", "fit_seconds_fused", "extraction_seconds",
    "finetune_seconds", "image_weight_ratio",
)
"""Per-configuration columns read from a run folder's files (:func:`run_columns`)."""

RESULT_COLUMNS: tuple[str, ...] = (
    *CONFIG_COLUMNS, "metric", "class", "model", "with_metadata", "value", "p_value", "stars",
    *RUN_COLUMNS,
)
"""Documented columns of the results table, in order."""

# notebook 04's training by the SoftmaxClassifier solver it uses (runs that predate `training`)
_TRAINING_OF_SOLVER = {"lbfgs": "converged", "trainscg": "paper"}


def _seconds(value: Any) -> float:
    """A number of seconds from a JSON value (NaN when absent or not a finite number)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _json_or_empty(run: RunFolder, name: str) -> dict[str, Any]:
    if not run.has(name):
        return {}
    try:
        return run._read_json(name)
    except RunFolderError:
        return {}


def run_columns(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The :data:`RUN_COLUMNS` of one run folder (NaN or None for what its files lack).

    ``training`` comes from the ``fusion`` stage of ``run.json``; the fit times from
    ``timings.json`` (``fit_image``/``fit_fused``, else its ``classifier`` summaries); extraction
    and fine-tuning from ``feature_timings.json`` (``extraction_s``/``fine_tuning_s``), else
    ``timings.json`` (``extraction``/``finetune``); ``image_weight_ratio`` from the two classifier
    files through :func:`fusion_utils.interpret.weights.weight_scale_table` (row ``all``). A
    missing, damaged or inconsistent file gives NaN for its columns, never an error.
    """
    run = RunFolder(run_dir)
    timings = _json_or_empty(run, "timings.json")
    features = _json_or_empty(run, "feature_timings.json")
    fits = timings.get("classifier") if isinstance(timings.get("classifier"), dict) else {}

    def fit(model: str) -> float:
        value = _seconds(timings.get(f"fit_{model}"))
        if math.isnan(value) and isinstance(fits.get(model), dict):
            value = _seconds(fits[model].get("fit_seconds"))
        return value

    def first(*values: Any) -> float:
        return next((v for v in map(_seconds, values) if not math.isnan(v)), math.nan)

    training = None
    try:
        fusion = run.parameters("fusion") if run.has("run.json") else {}
    except (RunFolderError, KeyError, ValueError):
        fusion = {}
    if fusion.get("training"):
        training = str(fusion["training"])
    elif fusion.get("solver") in _TRAINING_OF_SOLVER:
        training = _TRAINING_OF_SOLVER[str(fusion["solver"])]
    return {"training": training,
            "fit_seconds_image": fit("image"), "fit_seconds_fused": fit("fused"),
            "extraction_seconds": first(features.get("extraction_s"), timings.get("extraction")),
            "finetune_seconds": first(features.get("fine_tuning_s"), timings.get("finetune")),
            "image_weight_ratio": _image_weight_ratio(run)}


def _image_weight_ratio(run: RunFolder) -> float:
    """The Fig. 5 statistic of a run (NaN without both classifier files or metadata columns)."""
    from fusion_utils.interpret.weights import weight_scale_table

    if not (run.classifier_path("image").is_file() and run.classifier_path("fused").is_file()):
        return math.nan
    try:
        table = weight_scale_table(run.read_classifier("image"), run.read_classifier("fused"))
    except (RunFolderError, ValueError):
        return math.nan
    return float(table.loc[table["class"] == "all", "ratio"].iloc[0])


def add_run_columns(table: pd.DataFrame, runs_dir: str | os.PathLike[str], *,
                    overwrite: bool = True) -> pd.DataFrame:
    """``table`` with :data:`RUN_COLUMNS` derived from ``runs_dir/<config_id>/`` (per row).

    Parameters
    ----------
    table : pandas.DataFrame
        A collected results table (with ``config_id``).
    runs_dir : path-like
        The grid's runs folder; a configuration without a folder gets NaN.
    overwrite : bool
        Replace values already in the table (default); False only fills missing ones.

    Returns
    -------
    pandas.DataFrame
        A copy in the :data:`RESULT_COLUMNS` order (extra axes after ``seed``).
    """
    if "config_id" not in table.columns:
        raise ValueError("the results table has no config_id column; pass a table written by "
                         "fusion_utils.experiments.results.collect")
    root = Path(runs_dir).expanduser()
    per = {cid: run_columns(root / str(cid)) for cid in table["config_id"].astype(str).unique()}
    out = table.copy()
    ids = out["config_id"].astype(str)
    for col in RUN_COLUMNS:
        derived = ids.map(lambda cid, c=col: per[cid][c])
        if col in out.columns and not overwrite:
            derived = out[col].where(out[col].notna(), derived)
        out[col] = derived.astype(object if col == "training" else float)
    return _ordered(out)


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    return df[[*CONFIG_COLUMNS, *extra, *RESULT_COLUMNS[len(CONFIG_COLUMNS):]]]


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``status.json`` (``{"state": "pending"}`` when it has none or it is
    unreadable, then with ``error`` naming the file)."""
    try:
        return RunFolder(run_dir).read_status()
    except (OSError, RunFolderError) as exc:
        return {"state": "pending", "error": f"unreadable {Path(run_dir) / 'status.json'}: {exc}"}


def results_table(run_dir: str | os.PathLike[str], columns: Mapping[str, Any]) -> pd.DataFrame:
    """One run's tidy results: notebook 05's metrics with the configuration columns and p-values.

    Parameters
    ----------
    run_dir : path-like
        A run folder holding ``metrics.parquet`` (and optionally ``significance.parquet``).
    columns : mapping
        Configuration columns (:meth:`Configuration.columns`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS` plus any extra configuration column; the
        :data:`RUN_COLUMNS` from :func:`run_columns`.
    """
    run = RunFolder(run_dir)
    df = run.read_metrics()[["metric", "class", "model", "value"]].copy()
    df["model"] = df["model"].astype(str)
    df["with_metadata"] = df["model"].eq("fused")
    df["value"] = df["value"].astype(float)
    df["p_value"] = float("nan")
    df["stars"] = ""
    if run.has("significance.parquet"):
        sig = run.read_table("significance.parquet")
        if {"class", "p_value"} <= set(sig.columns):
            sig = sig.set_index(sig["class"].astype(str))
            rows = df["metric"].eq("auroc") & df["model"].eq("fused") & df["class"].isin(sig.index)
            df.loc[rows, "p_value"] = df.loc[rows, "class"].map(sig["p_value"]).astype(float)
            if "stars" in sig.columns:
                df.loc[rows, "stars"] = df.loc[rows, "class"].map(sig["stars"]).fillna("")
    for name, value in run_columns(run_dir).items():
        df[name] = value
    for name, value in reversed(list(columns.items())):
        if name not in RUN_COLUMNS:
            df.insert(0, name, [value] * len(df))
    return _ordered(df).reset_index(drop=True)


def _first_line(text: Any, width: int = 200) -> str:
    line = str(text or "").strip().splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _run_dirs(runs_dir: Path) -> list[Path]:
    return sorted(p.parent for p in runs_dir.glob("*/status.json"))


def grid_status(source: str | os.PathLike[str]) -> pd.DataFrame:
    """State of every run: from a runs folder, or from a grid file (its default runs folder).

    Returns
    -------
    pandas.DataFrame
        ``config_id``, ``state``, ``stage``, ``seconds``, ``finished``, ``error`` (first line).
    """
    path = Path(source).expanduser()
    if path.is_file():
        g = load_grid(path, resolve_notebooks=False)
        root = default_runs_root(g.name)
        entries = [(c.config_id, root / c.config_id) for c in g.configurations]
    else:
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is neither a grid file nor a runs folder")
        entries = [(p.name, p) for p in _run_dirs(path)]
    rows = []
    for cid, run_dir in entries:
        st = read_status(run_dir)
        rows.append({"config_id": cid, "state": st.get("state"), "stage": st.get("stage"),
                     "seconds": st.get("seconds"), "finished": st.get("finished"),
                     "error": _first_line(st.get("error")) or None})
    return pd.DataFrame(rows, columns=["config_id", "state", "stage", "seconds", "finished",
                                       "error"])


def collect(runs_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None,
            *, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Gather the results of every completed run under ``runs_dir`` into one table.

    Parameters
    ----------
    runs_dir : path-like
        A grid's runs folder (``runs/<grid>``).
    output : path-like, optional
        Also write the table there as parquet (atomically).
    warn : callable, optional
        Receives one line per run that is not complete (default: ignored).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS` (extra axes after ``seed``); empty with those columns
        when no run is complete. A run whose ``results.parquet`` lacks :data:`RUN_COLUMNS` gets
        them from its folder (:func:`add_run_columns`).
    """
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {root} not found; run a grid first "
                                "(python -m fusion_utils.experiments run experiments/book.yaml)")
    frames = []
    for run_dir in _run_dirs(root):
        st = read_status(run_dir)
        run = RunFolder(run_dir)
        if st.get("state") != "done" or not run.has("results.parquet"):
            if warn:
                warn(f"{run_dir.name}: {st.get('state')}, not collected")
            continue
        frame = run.read_results()
        if not set(RUN_COLUMNS) <= set(frame.columns):  # a run collected before they existed
            frame = add_run_columns(frame, root, overwrite=False)
        frames.append(frame)
    if frames:
        df = _ordered(pd.concat(frames, ignore_index=True))
    else:
        df = pd.DataFrame(columns=list(RESULT_COLUMNS))
    if output is not None:
        with atomic_path(output) as tmp:
            df.to_parquet(tmp, index=False)
    return df


def load_results(results_path: str | os.PathLike[str] = "",
                 runs_dir: str | os.PathLike[str] = "",
                 default: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The results table of a grid: a collected parquet file, or a runs folder collected now.

    Parameters
    ----------
    results_path : path-like
        A parquet file written by :func:`collect`; wins when given.
    runs_dir : path-like
        A grid's runs folder, relative to the project root unless absolute.
    default : path-like, optional
        Runs folder used when both are empty (default ``runs/book``).
    """
    if str(results_path):
        path = Path(results_path)
        if not path.is_file():
            raise FileNotFoundError(f"no results table at {path}: run `python -m "
                                    "fusion_utils.experiments collect <runs-dir> -o FILE` first")
        return pd.read_parquet(path)
    folder = Path(runs_dir) if str(runs_dir) else Path(default or default_runs_root("book"))
    if not folder.is_absolute():
        folder = project_root() / folder
    return collect(folder, warn=lambda msg: print("not complete:", msg))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusion_utils.experiments.results add-run-columns TABLE RUNS_DIR [-o OUT]``:
    re-derive :data:`RUN_COLUMNS` of a collected table from its run folders (in place unless
    ``-o``)."""
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.experiments.results",
                                     description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-run-columns", help="re-derive the per-run columns of a table")
    add.add_argument("table", help="a results.parquet written by collect")
    add.add_argument("runs_dir", help="the grid's runs folder (runs/<grid>)")
    add.add_argument("-o", "--output", help="write here instead of over TABLE")
    args = parser.parse_args(argv)
    table_path = Path(args.table)
    if not table_path.is_file():
        parser.error(f"no results table at {table_path}")
    if not Path(args.runs_dir).is_dir():
        parser.error(f"no runs folder at {args.runs_dir}")
    df = add_run_columns(pd.read_parquet(table_path), args.runs_dir)
    output = Path(args.output) if args.output else table_path
    with atomic_path(output) as tmp:
        df.to_parquet(tmp, index=False)
    per = df.groupby("config_id")[list(RUN_COLUMNS)].first()
    print(f"{output}: {len(df)} rows, {len(per)} configurations; per configuration:")
    print(per.to_string())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
