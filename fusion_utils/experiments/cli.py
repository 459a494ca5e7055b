"""The grid's command line: ``fusion-grid`` or ``python -m fusion_utils.experiments``.

::

    python -m fusion_utils.experiments run experiments/book.yaml [--runs-dir runs/book]
        [--scheduler tcp://host:8786] [--workers N] [--threads-per-worker N]
        [--only 'ptbxl-*'] [--force] [--from-stage 04_fusion] [--dry-run]
    python -m fusion_utils.experiments status runs/book          # or the grid file
    python -m fusion_utils.experiments collect runs/book [-o results.parquet]

``run`` exits with status 1 when any configuration failed. The grid file's schema is in
:mod:`fusion_utils.experiments.spec`, the run folder and parallelism in
:mod:`fusion_utils.experiments.runner`, the results table's columns in
:mod:`fusion_utils.experiments.results`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fusion_utils.experiments.results import _first_line, collect, grid_status
from fusion_utils.experiments.runner import run_grid

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion-grid", description="Run an experiment grid through papermill on Dask, "
        "show its status, collect its results (see the fusion_utils.experiments.cli docstring).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a grid")
    run.add_argument("grid", help="grid file, e.g. experiments/book.yaml")
    run.add_argument("--runs-dir", help="folder of the run folders (default runs/<grid name>)")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://host:port")
    run.add_argument("--workers", type=int, help="configurations at once (LocalCluster)")
    run.add_argument("--threads-per-worker", type=int, help="compute threads per configuration")
    run.add_argument("--only", help="glob pattern(s) on configuration ids, comma-separated")
    run.add_argument("--force", action="store_true", help="re-run completed configurations")
    run.add_argument("--from-stage", metavar="NOTEBOOK",
                     help="re-run the selected configurations (done ones too) from this notebook "
                          "stem on, keeping the earlier stages' outputs (e.g. 04_fusion: refit "
                          "the classifiers without extracting the features again)")
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
                           only=args.only, force=args.force, from_stage=args.from_stage,
                           dry_run=args.dry_run)
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
