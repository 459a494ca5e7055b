"""Run a grid: each configuration's notebooks through papermill, in parallel on Dask.

:func:`run_grid` submits one Dask task per configuration; the task (:func:`run_configuration`)
runs the configuration's notebooks in turn, each in its own Jupyter kernel, into its run folder
``<runs-dir>/<config-id>/``.

Run folder
----------
It holds the executed notebooks (``<stem>.ipynb``; a failing one is kept as
``<stem>.failed.ipynb``), whatever the notebooks write there (``features.npz``,
``predictions.parquet``, ``metrics.parquet``, ``significance.parquet``), the run's results table
``results.parquet`` (:mod:`fusion_utils.experiments.results`) and ``status.json``: ``state``
(:data:`STATES`), ``stage`` (the notebook running, or the one that failed), ``stages`` (seconds
per notebook), ``seconds``, ``started``/``finished``, host, ``threads``, ``config_hash`` and, for
a failure, ``error`` (one line: ``<notebook>: <Exception>: <message>``), ``detail`` and
``traceback``. ``status.json`` with state ``done`` is written last and atomically: it is the
completion marker. A later invocation skips a configuration whose status is ``done`` with the
same ``config_hash`` (changed parameters re-run it; ``force`` re-runs all). A failed
configuration is recorded and the others go on; run again, it resumes at the notebook that
failed (the stages before it, with their executed notebooks in the run folder, are kept: see
:func:`_finished_stages`), so that, for example, an evaluation that failed after a fine-tuning
on another machine does not repeat the fine-tuning.

Parallelism
-----------
By default a :class:`distributed.LocalCluster` of worker *processes* is started with one task
slot each; ``workers`` sets how many configurations run at once and ``threads_per_worker`` how
many compute threads each run's kernels use (exported as ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/
``FUSION_NUM_THREADS`` before the kernels start). Without them :func:`choose_layout` picks both
from the core count (2 cores: 2 workers x 1 thread, because each run's serial parts, such as
kernel start and imports, then overlap; the BN half of the book grid took 180 s against 449 s
and 534 s as 1 worker x 2 threads on a shared 2-core machine); when fewer configurations remain
than workers, each gets the spare cores.

``scheduler="tcp://host:port"`` sends the tasks to an existing Dask cluster instead. Its workers
need this package and the same file system paths (project, ``runs/``, ``cache/``, data), and
each should have one thread (``dask worker --nthreads 1``) or as many as configurations it may
run at once. On SLURM or PBS, dask-jobqueue starts such workers as batch jobs::

    from dask_jobqueue import SLURMCluster          # pip install dask-jobqueue; or PBSCluster
    cluster = SLURMCluster(cores=8, processes=1, memory="32GB", walltime="24:00:00",
                           job_extra_directives=["--gres=gpu:1"])
    cluster.scale(jobs=4)                           # four GPU nodes, one configuration each
    run_grid("experiments/paper.yaml", scheduler=cluster.scheduler_address)

The Dask dashboard address is printed when the scheduler serves one (it needs ``bokeh``).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_utils.experiments.results import _first_line, read_status, results_table
from fusion_utils.experiments.spec import Configuration, Grid, load_grid
from fusion_utils.paths import project_root
from fusion_utils.paths import runs_dir as default_runs_root
from fusion_utils.run_folder import RunFolder

__all__ = ["STATES", "choose_layout", "run_configuration", "run_grid"]

STATES: tuple[str, ...] = ("pending", "running", "done", "failed")
"""The states a run's ``status.json`` records, in order."""

_ENV_PASSED = ("FUSION_PROJECT_ROOT", "FUSION_CACHE_DIR", "FUSION_SHARED_DATA", "HF_HUB_OFFLINE",
               "TORCH_HOME", "HF_HOME", "MPLBACKEND")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "FUSION_NUM_THREADS")


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
    finished = _finished_stages(read_status(run_dir), run_dir, task)
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
    if finished:
        status["resumed"] = {stem: dict(info) for stem, info in finished.items()}
    RunFolder(run_dir).write_status(status)
    t0 = time.perf_counter()
    try:
        from fusion_utils.notebook_runner import execute_notebook

        RunFolder(run_dir).record("grid", {"config_id": task["config_id"],
                                           "config_hash": task["config_hash"],
                                           "columns": task["columns"]})

        for nb, params in task["stages"]:
            stem = Path(nb).stem
            if stem in finished:  # done by an earlier attempt of the same configuration
                status["stages"][stem] = finished[stem]["seconds"]
                continue
            status["stage"] = stem
            RunFolder(run_dir).write_status(status)
            t_stage = time.perf_counter()
            execute_notebook(nb, run_dir / f"{stem}.ipynb", params,
                             timeout=task.get("cell_timeout"))
            status["stages"][stem] = round(time.perf_counter() - t_stage, 3)
        results = results_table(run_dir, task["columns"])
        RunFolder(run_dir).write_results(results)
        status.update(state="done", stage=None, n_results=len(results))
    except BaseException as exc:  # recorded, never propagated: the other runs go on
        status.update(state="failed", error=_error_line(exc, status.get("stage")),
                      detail=str(exc), traceback=traceback.format_exc())
        if not isinstance(exc, Exception):  # KeyboardInterrupt/SystemExit: record, then re-raise
            _finish(status, run_dir, t0)
            raise
    return _finish(status, run_dir, t0)


def _finished_stages(previous: Mapping[str, Any], run_dir: Path,
                     task: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Stages a failed earlier attempt of this configuration completed, to be kept.

    A configuration that failed in a late stage (chapter 05 after an hour of fine-tuning, say)
    resumes there: a stage counts as finished when the earlier ``status.json`` has the same
    ``config_hash``, state ``failed`` (or ``pending`` with the failure kept in
    ``after_failure``, the queue marker :func:`run_grid` writes), a time for the stage in
    ``stages``, and the executed notebook ``<stem>.ipynb`` is in the run folder; ``--force``
    runs every stage again. Only a leading run of finished stages is kept
    (a later stage reads what the earlier ones wrote). With ``task["from_stage"]`` (``run_grid``'s
    ``from_stage``) a completed configuration counts too, and the stages before that notebook
    are kept (those that are finished and leading, as above). Returns ``{stem: {"seconds", "host",
    "finished"}}``; empty for a fresh, completed or changed configuration.
    """
    if previous.get("config_hash") != task["config_hash"]:
        return {}
    if previous.get("state") == "pending" and previous.get("after_failure"):
        previous = {**previous, **previous["after_failure"], "state": "failed"}
    from_stage = task.get("from_stage")
    if previous.get("state") != "failed" and not (from_stage and previous.get("state") == "done"):
        return {}
    done = dict(previous.get("resumed") or {})
    for stem, seconds in dict(previous.get("stages") or {}).items():
        done.setdefault(stem, {"seconds": seconds, "host": previous.get("host"),
                               "finished": previous.get("finished")})
    kept: dict[str, dict[str, Any]] = {}
    for nb, _params in task["stages"]:
        stem = Path(nb).stem
        if stem == from_stage or stem not in done or not (run_dir / f"{stem}.ipynb").is_file():
            break
        kept[stem] = done[stem]
    return kept


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
    RunFolder(run_dir).write_status(status)  # written last: the completion marker
    return status


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
    from_stage: str | None = None,
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
    from_stage : str, optional
        Notebook stem (``04_fusion``, say) to re-run the selected configurations from, done ones
        included, keeping the earlier stages' executed notebooks and outputs where they finished
        (e.g. refit the classifiers after a change to them without extracting the features
        again). A configuration whose earlier stages did not finish runs from its start.
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
    if from_stage is not None:
        stems = [Path(nb).stem for nb in g.notebooks]
        if from_stage not in stems:
            raise ValueError(f"from_stage={from_stage!r} is not a notebook of grid {g.name!r}: "
                             f"choose one of {', '.join(stems)}")
        force = False
    cores = os.cpu_count() or 1
    auto_workers, auto_threads = choose_layout(cores)

    rows: list[dict[str, Any]] = []
    todo: list[tuple[Configuration, dict[str, Any]]] = []
    for cfg in selected:
        run_dir = root / cfg.config_id
        task = _task(g, cfg, run_dir, None)
        if from_stage is not None:
            task["from_stage"] = from_stage
        status = read_status(run_dir)
        complete = (status.get("state") == "done"
                    and status.get("config_hash") == task["config_hash"])
        if complete and not force and from_stage is None:
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
        marker = {"config_id": task["config_id"], "config_hash": task["config_hash"],
                  "columns": task["columns"], "state": "pending", "queued": _now()}
        previous = read_status(Path(task["run_dir"]))
        if not force and _finished_stages(previous, Path(task["run_dir"]), task):
            marker["after_failure"] = {k: previous.get(k) for k in
                                       ("stages", "host", "finished", "resumed", "error")}
        RunFolder(task["run_dir"]).write_status(marker)
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
                 "<your data>, manifest_path=<this file>) or "
                 "fusion_utils.data.manifest.build_manifest and save_manifest")
        status = {"config_id": cfg.config_id, "config_hash": task["config_hash"],
                  "columns": task["columns"], "state": "failed", "stage": None, "error": error,
                  "traceback": None, "finished": _now(), "seconds": 0.0}
        RunFolder(task["run_dir"]).write_status(status)
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
    last_poll, t_grid = 0.0, time.monotonic()
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
                RunFolder(task["run_dir"]).write_status(status)
            n_done += 1
            state = status.get("state")
            secs = status.get("seconds")
            tail = (f"in {secs:.1f} s" if isinstance(secs, int | float) else "")
            if state == "failed":
                tail += f": {_first_line(status.get('error'))}"
            elapsed = time.monotonic() - t_grid  # grid elapsed time, a naive remaining estimate
            eta = elapsed / n_done * (n_total - n_done)
            say(f"  [{n_done}/{n_total}] {cfg.config_id}: {state} {tail}".rstrip()
                + f" (grid {elapsed:.0f} s elapsed, ~{eta:.0f} s left)")
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


def _summary(rows: list[dict[str, Any]], order: Iterable[Configuration]) -> pd.DataFrame:
    rank = {c.config_id: i for i, c in enumerate(order)}
    df = pd.DataFrame(rows, columns=["config_id", "state", "seconds", "error", "run_dir"])
    return df.sort_values("config_id", key=lambda s: s.map(rank)).reset_index(drop=True)
