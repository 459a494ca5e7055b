"""Synthetic demo cohort in the real PTB-XL and HAM10000 on-disk formats.

The book runs end to end on this cohort when the real datasets are absent. It is written in exactly
the published layouts, so :mod:`fusion_utils.data.ptbxl`, :mod:`fusion_utils.data.ham10000` and
:mod:`fusion_utils.data.manifest` read it with no special case::

    <outdir>/demo_cohort.json
        stamp: parameters and format version
    <outdir>/ptbxl/ptbxl_database.csv
        all 28 real columns, real order and formats
    <outdir>/ptbxl/scp_statements.csv
        the real statement table's 13 columns (subset of rows)
    <outdir>/ptbxl/records100/NNNNN/NNNNN_lr.{hea,dat}
        WFDB (wfdb.wrsamp), 12 leads, fmt 16, mV, 100 Hz
    <outdir>/ptbxl/records500/NNNNN/NNNNN_hr.{hea,dat}
        only with ``records500=True`` (5000 samples)
    <outdir>/ham10000/HAM10000_metadata.csv
        7-column layout (LF), rows grouped by dx as in the real file
    <outdir>/ham10000/HAM10000_images_part_1/ISIC_NNNNNNN.jpg
        first half of the ids (600x450 RGB JPEG)
    <outdir>/ham10000/HAM10000_images_part_2/ISIC_NNNNNNN.jpg
        second half

Command line: ``python -m fusion_utils.data.demo OUTDIR [--n-ptbxl N] [--n-ham N] [--seed S]
[--force] [--records500] [--workers W]``. A re-run with the same parameters returns at once (the
stamp); changed parameters rebuild into a temporary folder that is renamed into place, so an
interrupted build never leaves a half cohort behind a valid stamp. The same arguments give the same
bytes (every record draws from its own ``numpy`` generator seeded by ``(seed, stream, index)``, so
the bytes do not depend on the number of worker processes either). At the default size the build
takes about 53 s of CPU (ECG 8 s, images 43 s, neurokit2 templates 3 s), shared by two processes on
two cores. Two builds into the same folder at the same time are not supported.

This module writes the cohort; the parts live in private modules: the metadata tables and their
priors (``_demo_tables``), the ECGs (``_demo_ecg``) and the lesion images (``_demo_lesions``).
Their public names are re-exported here. The cohort's design (class proportions, image
ambiguity, metadata priors, how signals and images are made) is described in the book's Methods
chapter, section "The demo cohort".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion_utils.data._demo_ecg import LEADS, _write_ptbxl_records, synthesize_ecg
from fusion_utils.data._demo_lesions import _write_ham_images, render_lesion
from fusion_utils.data._demo_tables import (
    CLASS_FLOOR,
    HAM_CLASSES,
    HAM_COLUMNS,
    IMAGE_AMBIGUITY,
    PTBXL_CLASSES,
    PTBXL_COLUMNS,
    _write_ham_table,
    _write_ptbxl_tables,
    class_counts,
    ham_table,
    ptbxl_table,
)
from fusion_utils.io import atomic_write_json

__all__ = [
    "CLASS_FLOOR",
    "FORMAT_VERSION",
    "HAM_CLASSES",
    "HAM_COLUMNS",
    "IMAGE_AMBIGUITY",
    "LEADS",
    "PTBXL_CLASSES",
    "PTBXL_COLUMNS",
    "STAMP_FILE",
    "class_counts",
    "ham_table",
    "main",
    "ptbxl_table",
    "render_lesion",
    "synthesize_ecg",
    "write_demo_cohort",
]

FORMAT_VERSION = 2
"""Bumped whenever the written bytes change for the same parameters (forces a rebuild)."""

STAMP_FILE = "demo_cohort.json"


def _build(root: Path, n_ptbxl: int, n_ham: int, seed: int, records500: bool, workers: int) -> None:
    """Write both datasets under ``root``; records and images are shared among ``workers``."""
    ptbxl, ham = root / "ptbxl", root / "ham10000"
    ptbxl.mkdir(parents=True, exist_ok=True)
    ham.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        _write_ptbxl_records(ptbxl, n_ptbxl, seed, records500)
        _write_ham_images(ham, n_ham, seed)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: safe whatever the parent imported (torch, threads); every record has its own
        # seed, so the bytes do not depend on the number of workers.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            jobs = [pool.submit(_write_ptbxl_records, ptbxl, n_ptbxl, seed, records500,
                                (i, workers))
                    for i in range(workers)]
            jobs += [pool.submit(_write_ham_images, ham, n_ham, seed, (i, 2 * workers))
                     for i in range(2 * workers)]
            for job in jobs:
                job.result()
    _write_ptbxl_tables(ptbxl, n_ptbxl, seed)
    _write_ham_table(ham, n_ham, seed)


def _stamp(n_ptbxl: int, n_ham: int, seed: int, records500: bool) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "generator": "fusion_utils.data.demo",
            "n_ptbxl": int(n_ptbxl), "n_ham": int(n_ham), "seed": int(seed),
            "records500": bool(records500)}


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_demo_cohort(outdir: str | os.PathLike[str], n_ptbxl: int = 400, n_ham: int = 400,
                      seed: int = 0, *, force: bool = False, records500: bool = False,
                      workers: int | None = None) -> dict[str, Path]:
    """Write the synthetic cohort: ``<outdir>/ptbxl`` and ``<outdir>/ham10000``.

    Parameters
    ----------
    outdir : path-like
        Folder that receives ``ptbxl/``, ``ham10000/`` and the stamp ``demo_cohort.json``.
    n_ptbxl, n_ham : int
        Number of ECG records (>= 5) and lesion images (>= 7).
    seed : int
        Random seed; the same arguments write the same bytes.
    force : bool
        Rebuild even when the stamp says the cohort is already there, and overwrite
        ``ptbxl/``/``ham10000/`` folders that this function did not write.
    records500 : bool
        Also write ``records500/`` (500 Hz); off by default (see the module docstring).
    workers : int, optional
        Processes that write records and images (default: 1 for small cohorts, else up to 2).
        The bytes written do not depend on it.

    Returns
    -------
    dict
        ``{"ptbxl": Path, "ham10000": Path}``.

    Raises
    ------
    FileExistsError
        If ``outdir`` holds a ``ptbxl`` or ``ham10000`` folder without a demo stamp (for example
        the real data) and ``force`` is false.
    """
    for name, value, k in (("n_ptbxl", n_ptbxl, 5), ("n_ham", n_ham, 7)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < k:
            raise ValueError(f"{name} must be an integer >= {k} (one record per class); "
                             f"got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    outdir = Path(outdir)
    paths = {"ptbxl": outdir / "ptbxl", "ham10000": outdir / "ham10000"}
    stamp_path = outdir / STAMP_FILE
    wanted = _stamp(n_ptbxl, n_ham, seed, records500)
    current = _read_stamp(stamp_path)
    if not force and current == wanted and all(p.is_dir() for p in paths.values()):
        return paths
    if not force and current is None:
        foreign = [str(p) for p in paths.values() if p.exists()]
        if foreign:
            raise FileExistsError(f"{', '.join(foreign)} exist(s) but {stamp_path} is missing: "
                                  "not a demo cohort written by fusion_utils.data.demo (or an "
                                  "interrupted one). Pass force=True (--force) to overwrite, or "
                                  "choose another folder.")

    outdir.mkdir(parents=True, exist_ok=True)
    for stale in [*outdir.glob(".demo_cohort.*"), *outdir.glob(".demo_old.*")]:
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 3600:  # an interrupted build
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo_cohort.", dir=outdir))
    try:
        if workers is None:
            workers = 1 if n_ptbxl + n_ham < 200 else min(2, os.cpu_count() or 1)
        _build(tmp, n_ptbxl, n_ham, seed, records500, max(1, int(workers)))
        if stamp_path.exists():
            stamp_path.unlink()  # no valid stamp while the folders are swapped
        trash = Path(tempfile.mkdtemp(prefix=".demo_old.", dir=outdir))
        for name, final in paths.items():
            if final.exists():
                os.replace(final, trash / name)
            os.replace(tmp / name, final)
        shutil.rmtree(trash, ignore_errors=True)
        atomic_write_json(stamp_path, wanted)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fusion_utils.data.demo OUTDIR [--n-ptbxl N] [--n-ham N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m fusion_utils.data.demo",
        description="Write the synthetic demo cohort (PTB-XL and HAM10000 layouts) into OUTDIR.")
    parser.add_argument("outdir", help="folder that receives ptbxl/ and ham10000/")
    parser.add_argument("--n-ptbxl", type=int, default=400, help="ECG records (default 400)")
    parser.add_argument("--n-ham", type=int, default=400, help="lesion images (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--records500", action="store_true", help="also write 500 Hz records")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes to use "
                             "(default: up to 2; the output does not depend on it)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        paths = write_demo_cohort(args.outdir, args.n_ptbxl, args.n_ham, args.seed,
                                  force=args.force, records500=args.records500,
                                  workers=args.workers)
    except (ValueError, FileExistsError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"demo cohort ready in {time.perf_counter() - start:.1f} s: "
          f"{paths['ptbxl']} ({args.n_ptbxl} ECGs), {paths['ham10000']} ({args.n_ham} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
