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
========================  =======================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_utils.experiments.spec import CONFIG_COLUMNS, load_grid
from fusion_utils.io import atomic_path
from fusion_utils.paths import project_root
from fusion_utils.paths import runs_dir as default_runs_root
from fusion_utils.run_folder import RunFolder, RunFolderError

__all__ = ["RESULT_COLUMNS", "collect", "grid_status", "load_results", "read_status",
           "results_table"]

RESULT_COLUMNS: tuple[str, ...] = (
    *CONFIG_COLUMNS, "metric", "class", "model", "with_metadata", "value", "p_value", "stars",
)
"""Documented columns of the results table, in order."""


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
        Columns :data:`RESULT_COLUMNS` plus any extra configuration column.
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
    for name, value in reversed(list(columns.items())):
        df.insert(0, name, [value] * len(df))
    extra = [c for c in columns if c not in RESULT_COLUMNS]
    order = [*CONFIG_COLUMNS, *extra, *RESULT_COLUMNS[len(CONFIG_COLUMNS):]]
    for col in order:
        if col not in df.columns:
            df[col] = None
    return df[order].reset_index(drop=True)


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
        when no run is complete.
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
        frames.append(run.read_results())
    if frames:
        df = pd.concat(frames, ignore_index=True)
        extra = [c for c in df.columns if c not in RESULT_COLUMNS]
        df = df[[*CONFIG_COLUMNS, *extra, *RESULT_COLUMNS[len(CONFIG_COLUMNS):]]]
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
