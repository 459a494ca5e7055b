"""Build the whole book: demo cohort, executed chapters, the book grid, then ``jupyter-book build``.

``make book`` runs ``python -m fusion_book.build``. The plan is data (:data:`CHAPTERS`):
each chapter notebook is executed with papermill, once per dataset where it serves both, into
``book/executed/`` (git-ignored), which ``_toc.yml`` lists. Features, fusion and evaluation come
from the book grid (``experiments/book.yaml``) run by :mod:`fusion_utils.experiments.runner`; one
configuration per dataset is shown as the chapter. The build is fresh (``_build`` removed) and
strict (``-W -n --keep-going``): a failing cell or any Sphinx warning fails the command.

Editions (:mod:`fusion_book.edition`): one per build. When the real PTB-XL/HAM10000 data are
present (``paths.shared_data_dir()``, or ``FUSION_REAL_DATA`` pointing at a folder with
``ptbxl/`` and ``ham10000/``), the build produces the **real edition**: every result chapter on
the real data, chapters 03-05 from one BN configuration per dataset of ``experiments/real.yaml``
re-computed on all its images and checked against the committed ``results/real/results.parquet``
(the build fails when they disagree beyond the stated tolerance), and chapter 08 on the committed
results of the whole real grid. Otherwise (or with ``FUSION_REAL_DATA=none``) it produces the
**demo edition** on the synthetic cohort. A banner on every page names the edition, and the
build ends with a table of the time per stage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_book.edition import (
    REAL_CHAPTER_CONFIG,
    REAL_CHECK_RUNS,
    StageTimer,
    banner,
    edition_name,
    real_chapter_parameters,
    write_edition_config,
)
from fusion_book.prerequisites import annotate_executed
from fusion_book.runtimes import save_machine, write_exercise_table, write_runtimes_page
from fusion_book.settings import write_book_config
from fusion_utils.notebook_runner import execute_notebook
from fusion_utils.paths import executed_dir, project_root, shared_data_dir

__all__ = ["CHAPTERS", "Chapter", "build_book", "main", "real_data_dir"]

#: Peak resident memory the build should stay under (the build's process tree, GiB).
MEMORY_BUDGET_GIB = 8

#: Demo cohort size used by the book (records per dataset).
DEMO_SIZE = {"n_ptbxl": 400, "n_ham": 400, "seed": 0}

#: Which book-grid configuration each dataset's features/fusion/evaluation chapters show.
#: The paper: natural images (HAM10000) gain most with frozen features, scalograms (PTB-XL)
#: with fine-tuning and augmentation.
CHAPTER_CONFIG = {"ham10000": "ham10000-efficientnet_lite0-bn-noaug",
                  "ptbxl": "ptbxl-efficientnet_lite0-ft-aug"}


@dataclass(frozen=True)
class Chapter:
    """One executed notebook of the book.

    Attributes
    ----------
    notebook : str
        Stem of the notebook under ``notebooks/``.
    output : str
        Stem of the executed notebook under ``book/executed/``.
    parameters : dict
        papermill parameters.
    needs_real : bool
        Execute only when the real tables are available.
    """

    notebook: str
    output: str
    parameters: dict[str, Any] = field(default_factory=dict)
    needs_real: bool = False


def real_data_dir() -> Path | None:
    """Folder holding the real ``ptbxl/`` and ``ham10000/`` tables, or ``None``."""
    env = os.environ.get("FUSION_REAL_DATA")
    if env and env.lower() == "none":
        return None
    folder = Path(env) if env else shared_data_dir()
    ok = (folder / "ptbxl" / "ptbxl_database.csv").is_file() and (
        folder / "ham10000" / "HAM10000_metadata.csv").is_file()
    return folder if ok else None


def _chapters(real: Path | None) -> list[Chapter]:
    """The chapter plan of the edition: demo parameters, or the real edition's."""
    before_grid = [
        Chapter("01_data_preparation", "01_data_preparation_ptbxl", {"dataset": "ptbxl"}),
        Chapter("01_data_preparation", "01_data_preparation_ham10000", {"dataset": "ham10000"}),
        Chapter("02_scalograms", "02_scalograms", {}),
    ]
    after_grid = [
        Chapter("06_interpretability", "06_interpretability", {"dataset": "ptbxl"}),
        Chapter("07_metadata_only", "07_metadata_only_ptbxl", {"dataset": "ptbxl"}),
        Chapter("07_metadata_only", "07_metadata_only_ham10000", {"dataset": "ham10000"}),
        Chapter("08_results", "08_results", {}),
        # three of the book grid's efficientnet_lite0 embeddings (BN, FT, FT with augmentation):
        # extracting lite1/lite2 on the demo cohort costs 70-120 s each on 2 cores, and each
        # further source widens the concatenation baseline's softmax fit, beyond the budget
        Chapter("09_meta_embeddings", "09_meta_embeddings",
                {"dataset": "ptbxl",
                 "run_dirs": "runs/book/ptbxl-efficientnet_lite0-bn-noaug,"
                             "runs/book/ptbxl-efficientnet_lite0-ft-noaug,"
                             "runs/book/ptbxl-efficientnet_lite0-ft-aug",
                 "extra_backbones": "", "epochs": 60}),
        Chapter("10_autoencoder_features", "10_autoencoder_features", {"dataset": "ptbxl"}),
        Chapter("11_domain_similarity", "11_domain_similarity", {}),
    ]
    chapters = [*before_grid, Chapter("<grid>", "<grid>"), *after_grid]
    if real is not None:
        params = real_chapter_parameters(real)
        chapters = [Chapter(c.notebook, c.output, params.get(c.output, c.parameters),
                            c.needs_real) for c in chapters]
    return chapters


CHAPTERS = _chapters(None)


def _log(msg: str) -> None:
    print(f"[book {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run_chapter(ch: Chapter, out_dir: Path) -> None:
    t0 = time.perf_counter()
    execute_notebook(ch.notebook, out_dir / f"{ch.output}.ipynb", ch.parameters)
    _log(f"executed {ch.notebook} -> {ch.output} ({time.perf_counter() - t0:.0f} s)")


def _write_unavailable(ch: Chapter, out_dir: Path) -> None:
    """Page standing in for a real-data chapter when the real tables are absent at build time."""
    dataset = ch.parameters.get("dataset", "")
    text = (
        f"# {ch.notebook.replace('_', ' ')[3:].capitalize()}: {dataset} (real table)\n\n"
        "The real tables were not available when this book was built, so this page holds no "
        "results. Build with `FUSION_REAL_DATA=/path/to/folder make book`, where the folder holds "
        "`ptbxl/ptbxl_database.csv` (with `scp_statements.csv`) and "
        "`ham10000/HAM10000_metadata.csv`, to fill it in; the chapter needs no signal or image "
        "file.\n"
    )
    (out_dir / f"{ch.output}.md").write_text(text, encoding="utf-8")


def _run_grid(root: Path, out_dir: Path, real: Path | None = None) -> None:
    from fusion_utils.experiments.results import collect
    from fusion_utils.experiments.runner import run_grid

    if real is not None:
        _run_real_grid(root, out_dir, real)
        return
    runs = root / "runs" / "book"
    t0 = time.perf_counter()
    summary = run_grid(root / "experiments" / "book.yaml", runs_dir=runs)
    _log(f"book grid done ({time.perf_counter() - t0:.0f} s)")
    _raise_failed(summary, "book-grid")
    collect(runs, runs / "results.parquet")
    _copy_chapters(runs, CHAPTER_CONFIG, out_dir, "book grid")


def _raise_failed(summary: Any, what: str) -> None:
    """Stop the build when a grid configuration failed, naming each one and its error."""
    failed = summary[summary["state"] == "failed"]
    if len(failed):
        details = "; ".join(f"{r.config_id}: {r.error}" for r in failed.itertuples())
        raise RuntimeError(f"{len(failed)} {what} configuration(s) failed: {details}")


def _copy_chapters(runs: Path, configs: dict[str, str], out_dir: Path, what: str) -> None:
    """Chapters 03-05 of each dataset are the executed notebooks of its chapter configuration."""
    for dataset, config_id in configs.items():
        for stem in ("03_feature_extraction", "04_fusion", "05_evaluation"):
            src = runs / config_id / f"{stem}.ipynb"
            if not src.is_file():
                raise FileNotFoundError(f"{what} did not produce {src}")
            shutil.copyfile(src, out_dir / f"{stem}_{dataset}.ipynb")


def _run_real_grid(root: Path, out_dir: Path, real: Path) -> None:
    """Re-compute the real edition's chapter configurations and check them against the
    committed results; copy their notebooks as chapters 03-05."""
    from fusion_utils.experiments import real_edition
    from fusion_utils.experiments.results import collect
    from fusion_utils.experiments.runner import run_grid

    runs = root / "runs" / REAL_CHECK_RUNS
    if runs.exists():
        shutil.rmtree(runs)  # a re-computation, never a resumed one
    real_edition.build_real_manifests(real)
    t0 = time.perf_counter()
    # A fresh cache (features, scalograms) so that the check re-computes rather than re-reads.
    previous = os.environ.get("FUSION_CACHE_DIR")
    os.environ["FUSION_CACHE_DIR"] = str(runs / "cache")
    try:
        # extract_features builds the PTB-XL montages in one batched pass itself. One
        # configuration at a time on all cores: side by side with one thread each, the
        # 10,015-image HAM10000 run kept one core idle after the PTB-XL run ended (16 vs about
        # 9 minutes measured on 2 cores).
        summary = run_grid(root / "experiments" / "real.yaml", runs_dir=runs,
                           only=",".join(REAL_CHAPTER_CONFIG.values()), workers=1,
                           threads_per_worker=os.cpu_count() or 1)
    finally:
        if previous is None:
            os.environ.pop("FUSION_CACHE_DIR", None)
        else:
            os.environ["FUSION_CACHE_DIR"] = previous
    _log(f"real configurations re-computed ({time.perf_counter() - t0:.0f} s)")
    _raise_failed(summary, "real")
    recomputed = collect(runs, runs / "results.parquet")
    report = real_edition.check_against_committed(recomputed,
                                                  real_edition.committed_results())
    _log(f"re-computed results agree with results/real/results.parquet within "
         f"{real_edition.TOLERANCE} (largest difference {report['difference'].max():.4f})")
    report.to_csv(runs / "check_against_committed.csv", index=False)
    _copy_chapters(runs, REAL_CHAPTER_CONFIG, out_dir, "real configuration")


def build_book(*, skip_execute: bool = False, check: bool = False) -> Path:
    """Run the whole build and return the path of ``_build/html/index.html``."""
    from fusion_utils.data.demo import write_demo_cohort

    root = project_root()
    os.environ["FUSION_PROJECT_ROOT"] = str(root)
    out_dir = executed_dir()
    real = real_data_dir()
    timer = StageTimer()
    _log(f"{edition_name(real)} edition" + (f" (real data in {real})" if real else ""))
    if not skip_execute:
        with timer.stage("demo cohort"):
            write_demo_cohort(root / "data" / "demo", **DEMO_SIZE)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        for ch in _chapters(real):
            if ch.notebook == "<grid>":
                with timer.stage("real configurations + check" if real else "book grid"):
                    _run_grid(root, out_dir, real)
            elif ch.needs_real and real is None:
                _write_unavailable(ch, out_dir)
                _log(f"{ch.output}: real tables not available, placeholder page written")
            else:
                with timer.stage(ch.output):
                    _run_chapter(ch, out_dir)
        save_machine(out_dir)
    # Under each chapter's title: what it needs, its run time here, its .ipynb/.py downloads.
    annotate_executed(out_dir)
    write_runtimes_page(out_dir, root / "runs" / (REAL_CHECK_RUNS if real else "book"))
    write_exercise_table(out_dir, root / "notebooks")
    build = root / "_build"
    if build.exists():
        shutil.rmtree(build)
    config = write_book_config(root, build / "_config.yml")  # only with FUSION_REPOSITORY_URL
    config = write_edition_config(root, build / "_config.yml", banner(real), base=config)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--path-output",
           str(root), "-W", "-n", "--keep-going", "--all", "--builder", "html",
           *(["--config", str(config)] if config else [])]
    _log("jupyter-book build -W -n --keep-going --all")
    with timer.stage("jupyter-book build"):
        subprocess.run(cmd, check=True, cwd=root)
    index = build / "html" / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"jupyter-book finished but {index} is missing")
    if check:
        from fusion_book.check import check_book

        check_book(build / "html")
    _log(f"book ready: {index}")
    print(f"\nTime and peak memory per stage ({edition_name(real)} edition):\n{timer.table()}",
          flush=True)
    peak = timer.peak_bytes / 2**30
    print(f"peak memory of the build (process tree, sampled): {peak:.2f} GiB "
          f"({'within' if peak < MEMORY_BUDGET_GIB else 'OVER'} the {MEMORY_BUDGET_GIB} GiB "
          "budget)", flush=True)
    return index


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m fusion_book.build [--skip-execute] [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-execute", action="store_true",
                        help="only run jupyter-book build on the notebooks already executed")
    parser.add_argument("--check", action="store_true",
                        help="afterwards load every page in headless Chromium (needs chromium)")
    args = parser.parse_args(argv)
    build_book(skip_execute=args.skip_execute, check=args.check)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
