"""Experiment grids: declare configurations in YAML, run them through papermill on Dask, collect results.

The paper is a grid (2 datasets x 8 backbones x {BN, FT} x {no augmentation, augmentation}, each
classified with and without metadata). This module expands a declarative grid file into
configurations, executes each configuration's notebooks (feature extraction, fusion, evaluation)
with papermill into its own run folder, in parallel through :mod:`dask.distributed`, and gathers
every run's metrics into one tidy table.

Command line
------------
::

    python -m fusion_utils.experiments run experiments/book.yaml [--runs-dir runs/book]
        [--scheduler tcp://host:8786] [--workers N] [--threads-per-worker N]
        [--only 'ptbxl-*'] [--force] [--dry-run]
    python -m fusion_utils.experiments status runs/book          # or the grid file
    python -m fusion_utils.experiments collect runs/book [-o results.parquet]

``fusion-grid`` is the same command, installed as a console script.

Grid file
---------
A YAML mapping (see ``experiments/book.yaml`` and ``experiments/paper.yaml``)::

    name: book                    # runs go to runs/<name>/<config-id>/ unless --runs-dir
    notebooks:                    # optional; run in this order for every configuration
      - 03_feature_extraction     #   (a stem under notebooks/ or a path; relative paths are
      - 04_fusion                 #   taken from the grid file's folder first, then the root)
      - 05_evaluation
    cell_timeout: 3600            # optional; seconds per cell, null for none
    defaults:                     # parameters of every configuration
      weights: imagenet
      epochs: 2
    datasets:                     # the dataset axis: one entry per dataset, with overrides
      ptbxl: {batch_size: 64, manifest: ""}
      ham10000: {batch_size: 128}
    axes:                         # the Cartesian product of these lists, for each dataset
      backbone: [efficientnet_lite0]
      mode: [bn, ft]
      augment: [false, true]
    rules:                        # optional conditional overrides, applied in order
      - when: {mode: bn}
        set: {epochs: 0}

A configuration's parameters are ``defaults``, then its dataset's entry, then its axis values,
then every matching rule. Each parameter goes to every notebook that declares it in its
``parameters`` cell (a name no notebook declares is an error that lists what each declares).
The runner itself sets ``dataset``, ``run_dir`` (the configuration's folder), ``config_label``
(the configuration id) and, from a dataset's ``manifest`` entry, ``manifest_path`` (relative
paths from the project root; empty means the notebooks' default,
``cache/manifests/<dataset>.parquet``, which notebook 01 writes).

The configuration id is the dataset followed by the axis values in the order the axes are
declared, joined by ``-``: booleans read ``aug``/``noaug`` for ``augment`` and ``<axis>``/
``no<axis>`` otherwise, other values their text with characters outside ``[A-Za-z0-9_.]``
replaced by ``_``; e.g. ``ptbxl-efficientnet_lite0-bn-noaug``.

Run folder
----------
``<runs-dir>/<config-id>/`` holds the executed notebooks (``<stem>.ipynb``; a failing one is kept
as ``<stem>.failed.ipynb``), whatever the notebooks write there (``features.npz``,
``predictions.parquet``, ``metrics.parquet``, ``significance.parquet``), the per-run results
table ``results.parquet`` (columns below) and ``status.json``: ``state`` (``pending``,
``running``, ``done``, ``failed``), ``stage`` (the notebook running, or the one that failed),
``stages`` (seconds per notebook), ``seconds``, ``started``/``finished``, host, ``threads``,
``config_hash`` and, for a failure, ``error`` (one line: ``<notebook>: <Exception>: <message>``),
``detail`` and ``traceback``. ``status.json`` with state ``done`` is written last and
atomically, so it is the completion marker: a later invocation skips a configuration whose status
is ``done`` with the same ``config_hash`` (changed parameters re-run it; ``--force`` re-runs
all). A failed configuration is recorded and the others go on; the command exits with status 1
when any failed.

Results table
-------------
``collect`` concatenates the ``results.parquet`` of every completed run. Columns, in order
(:data:`RESULT_COLUMNS`, then any extra axis of the grid):

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

Parallelism
-----------
Each configuration is one Dask task; the task runs the notebooks in turn, each in its own Jupyter
kernel (a child process of the worker). By default a :class:`distributed.LocalCluster` of worker
*processes* is started with one task slot each; ``--workers`` sets how many configurations run at
once and ``--threads-per-worker`` how many compute threads each run's kernels use (exported as
``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``FUSION_NUM_THREADS`` before the kernels start, which
torch reads at import). Without these options :func:`choose_layout` picks both from the core count
(2 cores: 2 workers x 1 thread; the BN half of the book grid took 180 s against 449 s and
534 s as 1 worker x 2 threads, on a shared 2-core machine, because each run's serial parts, such
as kernel start and imports, overlap); when fewer configurations remain than workers, each gets
the spare cores.

``--scheduler tcp://host:port`` sends the tasks to an existing Dask cluster instead. Its workers
need this package installed and the same file system paths (project, ``runs/``, ``cache/``, data)
as the machine that submits, and each should have one thread (``dask worker --nthreads 1``), or
as many as configurations it may run at once; each run then uses its worker's cores divided by
the worker's task slots (or ``--threads-per-worker``). On SLURM or PBS, dask-jobqueue starts such workers
as batch jobs::

    # pip install dask-jobqueue
    from dask_jobqueue import SLURMCluster          # or PBSCluster
    cluster = SLURMCluster(cores=8, processes=1, memory="32GB", walltime="24:00:00",
                           job_extra_directives=["--gres=gpu:1"])
    cluster.scale(jobs=4)                           # four GPU nodes, one configuration each
    print(cluster.scheduler_address)                # pass this to --scheduler

or from Python: ``run_grid("experiments/paper.yaml", scheduler=cluster.scheduler_address)``.
The Dask dashboard address is printed when the scheduler serves one (it needs ``bokeh``).
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_utils.io import atomic_path, atomic_write_json, stable_hash
from fusion_utils.paths import check_dataset, project_root
from fusion_utils.paths import runs_dir as default_runs_root

__all__ = [
    "CONFIG_COLUMNS",
    "DEFAULT_NOTEBOOKS",
    "RESULT_COLUMNS",
    "Configuration",
    "Grid",
    "choose_layout",
    "collect",
    "config_id",
    "grid_status",
    "load_grid",
    "load_results",
    "main",
    "read_status",
    "run_configuration",
    "run_grid",
]

DEFAULT_NOTEBOOKS: tuple[str, ...] = ("03_feature_extraction", "04_fusion", "05_evaluation")
"""Notebooks a configuration runs, in order, when the grid file names none."""

CONFIG_COLUMNS: tuple[str, ...] = (
    "grid", "config_id", "dataset", "backbone", "weights", "mode", "augment", "epochs", "seed",
)
"""Configuration columns of the results table (extra axes of a grid follow them)."""

RESULT_COLUMNS: tuple[str, ...] = (
    *CONFIG_COLUMNS, "metric", "class", "model", "with_metadata", "value", "p_value", "stars",
)
"""Documented columns of the results table, in order."""

STATES: tuple[str, ...] = ("pending", "running", "done", "failed")
_TOP_KEYS = {"name", "notebooks", "cell_timeout", "defaults", "datasets", "axes", "rules"}
_RUNNER_KEYS = {"dataset", "run_dir", "config_label", "manifest_path"}
_GRID_ONLY_KEYS = {"manifest"}
_ENV_PASSED = ("FUSION_PROJECT_ROOT", "FUSION_CACHE_DIR", "FUSION_SHARED_DATA", "HF_HUB_OFFLINE",
               "TORCH_HOME", "HF_HOME", "MPLBACKEND")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "FUSION_NUM_THREADS")


# --------------------------------------------------------------------------------------------
# grid files -> configurations


@dataclass(frozen=True)
class Configuration:
    """One point of a grid: a dataset, its axis values and the merged parameters.

    Attributes
    ----------
    grid : str
        Name of the grid.
    config_id : str
        Stable identifier, also the run folder's name.
    dataset : str
        ``ptbxl`` or ``ham10000``.
    axes : dict
        The axis values that define this configuration (axis name -> value).
    parameters : dict
        Merged parameters (defaults, dataset entry, axes, rules), without runner-set names.
    """

    grid: str
    config_id: str
    dataset: str
    axes: dict[str, Any]
    parameters: dict[str, Any]

    def manifest_path(self) -> Path | None:
        """The ``manifest`` parameter as an absolute path (relative: from the project root)."""
        manifest = self.parameters.get("manifest")
        if manifest in (None, ""):
            return None
        path = Path(str(manifest)).expanduser()
        return path if path.is_absolute() else project_root() / path

    def columns(self, extra_axes: Sequence[str] = ()) -> dict[str, Any]:
        """The configuration columns of the results table for this configuration."""
        values = {"grid": self.grid, "config_id": self.config_id, "dataset": self.dataset}
        for name in CONFIG_COLUMNS[3:]:
            values[name] = self.axes.get(name, self.parameters.get(name))
        for name in extra_axes:
            values.setdefault(name, self.axes.get(name, self.parameters.get(name)))
        return values


@dataclass
class Grid:
    """A parsed grid file.

    Attributes
    ----------
    name : str
        Grid name (default folder ``runs/<name>``).
    source : Path or None
        The YAML file it came from.
    notebooks : tuple of Path
        Notebooks each configuration runs, in order.
    configurations : list of Configuration
        The expanded grid, in declaration order.
    axes : tuple of str
        Axis names (besides ``dataset``).
    cell_timeout : int or None
        Seconds per notebook cell.
    """

    name: str
    source: Path | None
    notebooks: tuple[Path, ...]
    configurations: list[Configuration]
    axes: tuple[str, ...]
    cell_timeout: int | None = 3600
    _declared: dict[Path, set[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.configurations)

    def extra_axes(self) -> tuple[str, ...]:
        """Axes that are not among :data:`CONFIG_COLUMNS` (they become extra result columns)."""
        return tuple(a for a in self.axes if a not in CONFIG_COLUMNS)

    def select(self, patterns: str | Sequence[str] | None) -> list[Configuration]:
        """Configurations whose id matches any of the glob ``patterns`` (comma-separated)."""
        if not patterns:
            return list(self.configurations)
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        chosen = [c for c in self.configurations
                  if any(fnmatch.fnmatchcase(c.config_id, p) for p in patterns)]
        if not chosen:
            ids = ", ".join(c.config_id for c in self.configurations[:6])
            raise ValueError(f"--only {','.join(patterns)!s} matches no configuration of grid "
                             f"{self.name!r}; ids look like: {ids}, ...")
        return chosen

    def declared(self, notebook: Path) -> set[str]:
        """Parameter names declared by ``notebook`` (read once)."""
        if notebook not in self._declared:
            from fusion_utils.notebook_runner import notebook_parameters

            self._declared[notebook] = set(notebook_parameters(notebook))
        return self._declared[notebook]

    def notebook_parameters(self, config: Configuration, run_dir: str | os.PathLike[str]
                            ) -> list[tuple[Path, dict[str, Any]]]:
        """Route a configuration's parameters to each notebook that declares them.

        Raises
        ------
        ValueError
            If a parameter is declared by none of the grid's notebooks.
        """
        params = {k: v for k, v in config.parameters.items() if k not in _GRID_ONLY_KEYS}
        manifest = config.manifest_path()
        if manifest is not None:
            params["manifest_path"] = str(manifest)
        params.update(dataset=config.dataset, run_dir=str(run_dir), config_label=config.config_id)
        declared = {nb: self.declared(nb) for nb in self.notebooks}
        known = set().union(*declared.values()) | _RUNNER_KEYS
        unknown = sorted(set(params) - known)
        if unknown:
            listing = "; ".join(f"{nb.stem}: {', '.join(sorted(d))}" for nb, d in declared.items())
            raise ValueError(
                f"grid {self.name!r}, configuration {config.config_id}: parameter(s) "
                f"{', '.join(unknown)} are declared by none of its notebooks ({listing})"
            )
        return [(nb, {k: v for k, v in params.items() if k in declared[nb]})
                for nb in self.notebooks]

    def config_hash(self, config: Configuration) -> str:
        """Hash of what determines a run's results (notebooks and their parameters)."""
        routed = self.notebook_parameters(config, run_dir="")
        return stable_hash([[nb.stem, {k: v for k, v in p.items() if k != "run_dir"}]
                            for nb, p in routed])


def _format_value(axis: str, value: Any) -> str:
    if isinstance(value, bool):
        short = {"augment": "aug"}.get(axis, axis)
        return short if value else f"no{short}"
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(value))


def config_id(dataset: str, axes: Mapping[str, Any]) -> str:
    """Stable id of a configuration: the dataset and the axis values in order, joined by ``-``.

    Examples
    --------
    >>> config_id("ptbxl", {"backbone": "efficientnet_lite0", "mode": "bn", "augment": False})
    'ptbxl-efficientnet_lite0-bn-noaug'
    """
    return "-".join([dataset, *(_format_value(a, v) for a, v in axes.items())])


def _require_mapping(value: Any, what: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: {what} must be a mapping, got {type(value).__name__} {value!r}")
    return dict(value)


def _resolve_notebook(name: str, base: Path | None) -> Path:
    from fusion_utils.notebook_runner import notebook_path

    candidate = Path(str(name)).expanduser()
    if not candidate.is_absolute() and base is not None and (base / candidate).is_file():
        return (base / candidate).resolve()
    if not candidate.is_absolute() and (project_root() / candidate).is_file():
        return (project_root() / candidate).resolve()
    return notebook_path(str(name))


def load_grid(source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None,
              resolve_notebooks: bool = True) -> Grid:
    """Read a grid file (or an already parsed mapping) and expand its configurations.

    Parameters
    ----------
    source : path-like or mapping
        A YAML grid file (schema in the module docstring) or its parsed content.
    name : str, optional
        Overrides the file's ``name`` (default: ``name`` key, else the file's stem).
    resolve_notebooks : bool
        Check that the notebooks exist (turn off to only count configurations).

    Returns
    -------
    Grid

    Raises
    ------
    ValueError
        For an unknown top-level key, an axis that is not a non-empty list, an unknown dataset,
        a rule without ``when``/``set``, or two configurations with the same id.
    """
    import yaml

    if isinstance(source, Mapping):
        spec, path, label = dict(source), None, "<grid mapping>"
    else:
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"grid file {path} not found; the project's grids are in "
                                    f"{project_root() / 'experiments'}")
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        label = str(path)
        if not isinstance(spec, Mapping):
            raise ValueError(f"{label}: a grid file must be a YAML mapping")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(_TOP_KEYS))}")
    grid_name = str(name or spec.get("name") or (path.stem if path else "grid"))
    defaults = _require_mapping(spec.get("defaults"), "defaults", label)
    datasets_spec = _require_mapping(spec.get("datasets"), "datasets", label)
    if not datasets_spec:
        raise ValueError(f"{label}: 'datasets' must list at least one of ptbxl, ham10000")
    datasets = {check_dataset(k): _require_mapping(v, f"datasets.{k}", label)
                for k, v in datasets_spec.items()}
    axes = _require_mapping(spec.get("axes"), "axes", label)
    for axis, values in axes.items():
        if axis == "dataset":
            raise ValueError(f"{label}: 'dataset' is not an axis; list datasets under 'datasets'")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{label}: axes.{axis} must be a non-empty list, got {values!r}")
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        raise ValueError(f"{label}: rules must be a list of {{when: ..., set: ...}}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or set(rule) != {"when", "set"}:
            raise ValueError(f"{label}: rules[{i}] must have exactly the keys 'when' and 'set', "
                             f"got {rule!r}")
    base = path.parent if path else None
    nb_names = spec.get("notebooks") or list(DEFAULT_NOTEBOOKS)
    if isinstance(nb_names, str) or not isinstance(nb_names, list):
        raise ValueError(f"{label}: notebooks must be a list of notebook names, got {nb_names!r}")
    notebooks = tuple(_resolve_notebook(n, base) if resolve_notebooks else Path(str(n))
                      for n in nb_names)
    timeout = spec.get("cell_timeout", 3600)

    configurations: list[Configuration] = []
    seen: dict[str, Configuration] = {}
    for dataset, overrides in datasets.items():
        for combo in itertools.product(*axes.values()):
            point = dict(zip(axes, combo, strict=True))
            params = {**defaults, **overrides, **point}
            where = {"dataset": dataset, **params}
            for rule in rules:
                if all(where.get(k) == v for k, v in dict(rule["when"]).items()):
                    params.update(dict(rule["set"]))
            params.pop("dataset", None)
            cid = config_id(dataset, point)
            if cid in seen:
                raise ValueError(f"{label}: configurations {point} and {seen[cid].axes} both "
                                 f"have id {cid!r}; make the axis values distinct")
            cfg = Configuration(grid_name, cid, dataset, point, params)
            seen[cid] = cfg
            configurations.append(cfg)
    return Grid(grid_name, path, notebooks, configurations, tuple(axes),
                None if timeout is None else int(timeout))


# --------------------------------------------------------------------------------------------
# one configuration (runs on a Dask worker)


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``status.json`` (``{"state": "pending"}`` when it has none)."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return {"state": "pending"}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "pending", "error": f"unreadable {path}"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_configuration(task: Mapping[str, Any]) -> dict[str, Any]:
    """Execute one configuration's notebooks in turn; never raises.

    This is the function each Dask task runs. ``task`` is a plain mapping made by
    :func:`run_grid`: ``config_id``, ``run_dir``, ``config_hash``, ``columns`` (configuration
    columns of the results table), ``stages`` (a list of ``[notebook path, parameters]``),
    ``cell_timeout``, ``threads`` (compute threads for the kernels; None: this worker's cores
    over its task slots) and ``env``
    (environment variables to set first, such as ``FUSION_PROJECT_ROOT``).

    Returns
    -------
    dict
        The final status (also written to ``<run_dir>/status.json``): ``state`` is ``done`` or
        ``failed``; a failure carries ``error`` (one line) and ``traceback``.
    """
    run_dir = Path(task["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    for key, value in dict(task.get("env") or {}).items():
        os.environ[key] = str(value)
    threads = task.get("threads") or _worker_threads()
    if threads:
        for key in _THREAD_ENV:
            os.environ[key] = str(int(threads))
    status: dict[str, Any] = {
        "config_id": task["config_id"], "config_hash": task["config_hash"],
        "columns": task["columns"], "state": "running", "stage": None,
        "started": _now(), "host": socket.gethostname(), "pid": os.getpid(),
        "threads": threads, "stages": {},
    }
    atomic_write_json(run_dir / "status.json", status)
    t0 = time.perf_counter()
    try:
        from fusion_utils.notebook_runner import execute_notebook

        for nb, params in task["stages"]:
            stem = Path(nb).stem
            status["stage"] = stem
            atomic_write_json(run_dir / "status.json", status)
            t_stage = time.perf_counter()
            execute_notebook(nb, run_dir / f"{stem}.ipynb", params,
                             timeout=task.get("cell_timeout"))
            status["stages"][stem] = round(time.perf_counter() - t_stage, 3)
        results = results_table(run_dir, task["columns"])
        with atomic_path(run_dir / "results.parquet") as tmp:
            results.to_parquet(tmp, index=False)
        status.update(state="done", stage=None, n_results=len(results))
    except BaseException as exc:  # recorded, never propagated: the other runs go on
        status.update(state="failed", error=_error_line(exc, status.get("stage")),
                      detail=str(exc), traceback=traceback.format_exc())
        if not isinstance(exc, Exception):  # KeyboardInterrupt/SystemExit: record, then re-raise
            _finish(status, run_dir, t0)
            raise
    return _finish(status, run_dir, t0)


def _worker_threads() -> int:
    """Compute threads for a run on this Dask worker: its usable cores over its task slots."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        from distributed import get_worker

        slots = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):  # not inside a worker
        slots = 1
    return max(1, cores // max(1, slots))


def _error_line(exc: BaseException, stage: str | None) -> str:
    """``<stage>: <ExceptionName>: <message>``, the notebook's own exception when it raised one."""
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "ename") and hasattr(cause, "evalue"):
        text = f"{cause.ename}: {cause.evalue}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return f"{stage}: {text}" if stage else text


def _finish(status: dict[str, Any], run_dir: Path, t0: float) -> dict[str, Any]:
    status["seconds"] = round(time.perf_counter() - t0, 3)
    status["finished"] = _now()
    atomic_write_json(run_dir / "status.json", status)  # written last: the completion marker
    return status


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
    run_dir = Path(run_dir)
    path = run_dir / "metrics.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the last notebook of a configuration must write "
                                "metrics.parquet (columns metric, class, model, value)")
    metrics = pd.read_parquet(path)
    missing = {"metric", "class", "model", "value"} - set(metrics.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected "
                         "metric, class, model, value")
    df = metrics[["metric", "class", "model", "value"]].copy()
    df["model"] = df["model"].astype(str)
    df["with_metadata"] = df["model"].eq("fused")
    df["value"] = df["value"].astype(float)
    df["p_value"] = float("nan")
    df["stars"] = ""
    sig_path = run_dir / "significance.parquet"
    if sig_path.is_file():
        sig = pd.read_parquet(sig_path)
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


# --------------------------------------------------------------------------------------------
# the grid (client side)


def choose_layout(cores: int | None = None) -> tuple[int, int]:
    """Workers (configurations at once) and compute threads per run for ``cores`` cores.

    Small machines run one thread per configuration, so that the single-threaded parts of each
    run (kernel start, imports, data loading, the classifier's Python loop) overlap; larger ones
    give each run 2-8 threads. 2 cores -> (2, 1), 8 -> (4, 2), 16 -> (4, 4), 64 -> (8, 8).
    """
    cores = int(cores or os.cpu_count() or 1)
    threads = 1 if cores < 4 else min(8, max(2, cores // 4))
    return max(1, cores // threads), threads


def _task(grid: Grid, config: Configuration, run_dir: Path, threads: int | None) -> dict[str, Any]:
    routed = grid.notebook_parameters(config, run_dir)
    env = {k: os.environ[k] for k in _ENV_PASSED if os.environ.get(k)}
    env.setdefault("FUSION_PROJECT_ROOT", str(project_root()))
    return {
        "config_id": config.config_id, "run_dir": str(run_dir),
        "config_hash": grid.config_hash(config),
        "columns": config.columns(grid.extra_axes()),
        "stages": [[str(nb), params] for nb, params in routed],
        "cell_timeout": grid.cell_timeout, "threads": threads, "env": env,
    }


def _dashboard(client: Any) -> str:
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        return "dashboard unavailable (install bokeh>=3.1 to see it)"
    try:
        link = client.dashboard_link
    except Exception:  # the scheduler serves none
        link = None
    return f"dashboard {link}" if link else "dashboard disabled on this scheduler"


def run_grid(
    grid: str | os.PathLike[str] | Grid,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    only: str | Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    poll: float = 2.0,
    echo: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Run (or resume) a grid and return one row per selected configuration.

    Parameters
    ----------
    grid : path-like or Grid
        A grid file or a loaded :class:`Grid`.
    runs_dir : path-like, optional
        Folder of the run folders (default ``runs/<grid name>``).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:port``); default: a LocalCluster of
        worker processes.
    workers, threads_per_worker : int, optional
        Configurations at once (LocalCluster only) and compute threads per run; default
        :func:`choose_layout` of the core count.
    only : str or list of str, optional
        Glob pattern(s) on configuration ids; comma-separated in a string.
    force : bool
        Re-run configurations that are already done.
    dry_run : bool
        Print the plan (ids, state, each notebook's parameters) and run nothing.
    poll : float
        Seconds between progress checks.
    echo : callable or None
        Where progress lines go (``print`` by default; None for silence).

    Returns
    -------
    pandas.DataFrame
        Columns ``config_id``, ``state`` (``done``, ``failed``, ``skipped`` or, for a dry run,
        ``planned``), ``seconds``, ``error``, ``run_dir``.
    """
    say = echo or (lambda _msg: None)
    g = grid if isinstance(grid, Grid) else load_grid(grid)
    root = Path(runs_dir).expanduser().resolve() if runs_dir else default_runs_root(g.name)
    selected = g.select(only)
    cores = os.cpu_count() or 1
    auto_workers, auto_threads = choose_layout(cores)

    rows: list[dict[str, Any]] = []
    todo: list[tuple[Configuration, dict[str, Any]]] = []
    for cfg in selected:
        run_dir = root / cfg.config_id
        task = _task(g, cfg, run_dir, None)
        status = read_status(run_dir)
        complete = status.get("state") == "done" and status.get("config_hash") == task["config_hash"]
        if complete and not force:
            rows.append({"config_id": cfg.config_id, "state": "skipped",
                         "seconds": status.get("seconds"), "error": None, "run_dir": str(run_dir)})
        else:
            todo.append((cfg, task))
    say(f"[grid {g.name}] {len(selected)} configuration(s) in {root}: "
        f"{len(rows)} already done, {len(todo)} to run")
    if dry_run:
        for cfg, task in todo:
            say(f"  {cfg.config_id}")
            for nb, params in task["stages"]:
                shown = {k: v for k, v in params.items() if k != "run_dir"}
                say(f"      {Path(nb).stem}: {json.dumps(shown, default=str)}")
            rows.append({"config_id": cfg.config_id, "state": "planned", "seconds": None,
                         "error": None, "run_dir": task["run_dir"]})
        return _summary(rows, selected)
    if not todo:
        return _summary(rows, selected)

    todo = _preflight(todo, rows, say)
    if not todo:
        return _summary(rows, selected)
    threads: int | None
    if threads_per_worker:
        threads = int(threads_per_worker)
        n_workers = int(workers or max(1, cores // threads))
    elif scheduler:  # decided on each worker: its cores over its task slots
        threads, n_workers = None, 0
    else:  # fewer configurations than workers: give each the spare cores
        n_workers = max(1, min(int(workers or auto_workers), len(todo)))
        threads = max(auto_threads, cores // n_workers)
    for _cfg, task in todo:
        task["threads"] = threads
    for _cfg, task in todo:  # fresh 'pending' marker so `status` shows the queue
        atomic_write_json(Path(task["run_dir"]) / "status.json",
                          {"config_id": task["config_id"], "config_hash": task["config_hash"],
                           "columns": task["columns"], "state": "pending", "queued": _now()})
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
        say(f"[grid {g.name}] scheduler {scheduler} ({len(client.scheduler_info()['workers'])} "
            f"worker(s)); {threads or 'worker cores / task slots'} thread(s) per run; "
            f"{_dashboard(client)}")
    else:
        n_workers = max(1, min(n_workers, len(todo)))
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               memory_limit=0, host="127.0.0.1", dashboard_address=":0")
        client = Client(cluster)
        say(f"[grid {g.name}] LocalCluster {n_workers} worker process(es) x {threads} thread(s) "
            f"per run, scheduler {cluster.scheduler_address}; {_dashboard(client)}")
    try:
        rows.extend(_watch(client, todo, poll, say))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return _summary(rows, selected)


def _preflight(todo: list[tuple[Configuration, dict[str, Any]]], rows: list[dict[str, Any]],
               say: Callable[[str], None]) -> list[tuple[Configuration, dict[str, Any]]]:
    """Record as failed, without running them, configurations whose manifest file is missing."""
    kept = []
    for cfg, task in todo:
        manifest = cfg.manifest_path()
        if manifest is None or manifest.is_file():
            kept.append((cfg, task))
            continue
        error = (f"manifest {manifest} not found: build it first with notebook 01 "
                 f"(notebooks/01_data_preparation.py, parameters dataset={cfg.dataset}, data_dir="
                 "<your data>, manifest_path=<this file>) or fusion_utils.data.manifest.build_manifest "
                 "and save_manifest")
        status = {"config_id": cfg.config_id, "config_hash": task["config_hash"],
                  "columns": task["columns"], "state": "failed", "stage": None, "error": error,
                  "traceback": None, "finished": _now(), "seconds": 0.0}
        atomic_write_json(Path(task["run_dir"]) / "status.json", status)
        say(f"  {cfg.config_id}: failed: {error}")
        rows.append({"config_id": cfg.config_id, "state": "failed", "seconds": 0.0,
                     "error": error, "run_dir": task["run_dir"]})
    return kept


def _interleave(todo: list[tuple[Configuration, dict[str, Any]]]
                ) -> list[tuple[Configuration, dict[str, Any]]]:
    """Alternate datasets (ptbxl, ham10000, ptbxl, ...), keeping each dataset's order.

    Configurations running at the same time then mostly read different datasets, so they do
    not compute the same uncached scalograms or images twice.
    """
    by_dataset: dict[str, list[tuple[Configuration, dict[str, Any]]]] = {}
    for item in todo:
        by_dataset.setdefault(item[0].dataset, []).append(item)
    columns = itertools.zip_longest(*by_dataset.values())
    return [item for row in columns for item in row if item is not None]


def _watch(client: Any, todo: list[tuple[Configuration, dict[str, Any]]], poll: float,
           say: Callable[[str], None]) -> list[dict[str, Any]]:
    ordered = _interleave(todo)
    futures = {client.submit(run_configuration, task, key=f"grid-{cfg.config_id}-"
                             f"{task['config_hash']}-{time.time_ns()}", pure=False,
                             priority=len(ordered) - i): (cfg, task)
               for i, (cfg, task) in enumerate(ordered)}
    shown: dict[str, tuple[Any, Any]] = {}
    pending = set(futures)
    rows: list[dict[str, Any]] = []
    n_total, n_done = len(futures), 0
    last_poll = 0.0
    while pending:
        finished = {f for f in pending if f.done()}
        if not finished and time.monotonic() - last_poll < poll:
            time.sleep(0.2)
            continue
        pending -= finished
        for fut in finished:
            cfg, task = futures[fut]
            try:
                status = fut.result()
            except Exception as exc:  # the worker died or the task could not run
                status = {"config_id": cfg.config_id, "config_hash": task["config_hash"],
                          "columns": task["columns"], "state": "failed",
                          "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(), "finished": _now()}
                atomic_write_json(Path(task["run_dir"]) / "status.json", status)
            n_done += 1
            state = status.get("state")
            secs = status.get("seconds")
            tail = (f"in {secs:.1f} s" if isinstance(secs, int | float) else "")
            if state == "failed":
                tail += f": {_first_line(status.get('error'))}"
            say(f"  [{n_done}/{n_total}] {cfg.config_id}: {state} {tail}".rstrip())
            rows.append({"config_id": cfg.config_id, "state": state, "seconds": secs,
                         "error": status.get("error"), "run_dir": task["run_dir"]})
            shown.pop(cfg.config_id, None)
        last_poll = time.monotonic()
        for fut in pending:
            cfg, task = futures[fut]
            status = read_status(task["run_dir"])
            key = (status.get("state"), status.get("stage"))
            if key[0] == "running" and shown.get(cfg.config_id) != key:
                shown[cfg.config_id] = key
                say(f"  {_clock()} {cfg.config_id}: running {key[1] or ''} "
                    f"(on {status.get('host', '?')})".rstrip())
    return rows


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _first_line(text: Any, width: int = 200) -> str:
    line = str(text or "").strip().splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _summary(rows: list[dict[str, Any]], order: Iterable[Configuration]) -> pd.DataFrame:
    rank = {c.config_id: i for i, c in enumerate(order)}
    df = pd.DataFrame(rows, columns=["config_id", "state", "seconds", "error", "run_dir"])
    return df.sort_values("config_id", key=lambda s: s.map(rank)).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# status and results


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
        table = run_dir / "results.parquet"
        if st.get("state") != "done" or not table.is_file():
            if warn:
                warn(f"{run_dir.name}: {st.get('state')}, not collected")
            continue
        frames.append(pd.read_parquet(table))
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


# --------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion-grid", description="Run an experiment grid through papermill on Dask, "
        "show its status, collect its results (see the fusion_utils.experiments.grid docstring).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a grid")
    run.add_argument("grid", help="grid file, e.g. experiments/book.yaml")
    run.add_argument("--runs-dir", help="folder of the run folders (default runs/<grid name>)")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://host:port")
    run.add_argument("--workers", type=int, help="configurations at once (LocalCluster)")
    run.add_argument("--threads-per-worker", type=int, help="compute threads per configuration")
    run.add_argument("--only", help="glob pattern(s) on configuration ids, comma-separated")
    run.add_argument("--force", action="store_true", help="re-run completed configurations")
    run.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    status = sub.add_parser("status", help="state of each configuration")
    status.add_argument("source", help="runs folder or grid file")
    coll = sub.add_parser("collect", help="gather completed runs into one parquet table")
    coll.add_argument("runs_dir")
    coll.add_argument("-o", "--output", help="parquet file (default <runs_dir>/results.parquet)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m fusion_utils.experiments`` and ``fusion-grid``)."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        summary = run_grid(args.grid, runs_dir=args.runs_dir, scheduler=args.scheduler,
                           workers=args.workers, threads_per_worker=args.threads_per_worker,
                           only=args.only, force=args.force, dry_run=args.dry_run)
        counts = summary["state"].value_counts().to_dict()
        print("[grid] " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        for row in summary.itertuples():
            if row.state == "failed":
                print(f"  FAILED {row.config_id}: {_first_line(row.error)} "
                      f"(see {row.run_dir}/status.json)")
        return 1 if counts.get("failed") else 0
    if args.command == "status":
        table = grid_status(args.source)
        with pd.option_context("display.max_rows", None, "display.width", 160,
                               "display.max_colwidth", 80):
            print(table.to_string(index=False) if len(table) else "no runs")
        return 0
    output = args.output or Path(args.runs_dir) / "results.parquet"
    df = collect(args.runs_dir, output, warn=lambda m: print(f"  skipped {m}", file=sys.stderr))
    n_runs = df["config_id"].nunique() if len(df) else 0
    print(f"[grid] {len(df)} rows from {n_runs} completed run(s) -> {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


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
                                    "fusion_utils.experiments.grid collect <runs-dir> -o FILE` first")
        return pd.read_parquet(path)
    folder = Path(runs_dir) if str(runs_dir) else Path(default or default_runs_root("book"))
    if not folder.is_absolute():
        folder = project_root() / folder
    return collect(folder, warn=lambda msg: print("not complete:", msg))
