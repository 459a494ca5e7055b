"""Which edition a build produces, its chapter plan, its banner and its table of stage times.

One edition per build (a decision for a book that reads as one story):

``real``
    When the real data are present at build time (:func:`fusion_book.build.real_data_dir`:
    ``../shared/data`` or the folder named by ``FUSION_REAL_DATA``). Every result chapter runs
    on the real data: the 1,533 PTB-XL records with exactly one diagnostic superclass and all
    10,015 HAM10000 images at 200x150, split group-aware (patient / lesion) 70/15/15. The
    feature, fusion and evaluation chapters are one BN configuration per dataset
    (:data:`REAL_CHAPTER_CONFIG`), re-computed by the build on all the images and checked
    against the committed grid results (``results/real/results.parquet``, within
    :data:`fusion_utils.experiments.real_edition.TOLERANCE`); the results chapter reads the
    committed table of the whole real grid and its provenance.
``demo``
    Without real data: the synthetic demo cohort and the book grid (``experiments/book.yaml``),
    as before, with a banner on every page saying so.

Both editions execute the same chapter files (``_toc.yml`` is shared); only their parameters
differ, and the banner (Jupyter Book's ``html.announcement``) names the edition on every page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_BANNER",
    "REAL_CHAPTER_CONFIG",
    "REAL_CHECK_RUNS",
    "StageTimer",
    "banner",
    "edition_name",
    "meta_embedding_sources",
    "real_chapter_parameters",
    "tree_rss",
    "write_edition_config",
]

REAL_CHAPTER_CONFIG: dict[str, str] = {
    "ptbxl": "ptbxl-efficientnet_lite0-bn-noaug",
    "ham10000": "ham10000-efficientnet_lite0-bn-noaug",
}
"""Real-grid configurations that the build re-computes and shows as chapters 03-05."""

REAL_CHECK_RUNS = "real_book"
"""Runs folder (under ``runs/``) of the build's re-computed real configurations."""

DEMO_BANNER = ("Demo edition: every result in this book comes from a small synthetic cohort "
               "(400 simulated PTB-XL records, 400 simulated HAM10000 images), not from real "
               "patients. Build with the real data to get the real edition.")


def edition_name(real: Path | None) -> str:
    """``"real"`` when a real data folder is given, else ``"demo"``."""
    return "real" if real is not None else "demo"


def banner(real: Path | None) -> str:
    """The announcement shown at the top of every page of the edition."""
    if real is None:
        return DEMO_BANNER
    from fusion_utils.experiments.real_edition import HAM_IMAGE_DIR

    return ("Real edition: results on the real PTB-XL (1,533 records with one diagnostic "
            "superclass) and HAM10000 (10,015 images at 200x150, folder "
            f"{HAM_IMAGE_DIR}) data, split by patient / lesion 70/15/15; the grid's results "
            "are committed under results/real with their provenance.")


#: Backbones whose BN features chapter 09 combines in the real edition.
REAL_META_EMBEDDING_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def meta_embedding_sources(runs_root: Path) -> dict[str, str]:
    """Chapter 09's ``run_dirs`` and ``extra_backbones`` in the real edition (PTB-XL).

    efficientnet_lite0 is the build's own re-computed BN run (``runs/real_book``); each other
    backbone comes from the real grid's run folder ``runs/real/ptbxl-<backbone>-bn-noaug`` when
    it holds ``features.npz``, and is otherwise extracted by the chapter. A fresh checkout
    therefore builds without the (local, uncommitted) real grid runs.

    Parameters
    ----------
    runs_root : Path
        The project's ``runs/`` folder.
    """
    lite0 = runs_root / REAL_CHECK_RUNS / REAL_CHAPTER_CONFIG["ptbxl"]
    run_dirs, extra = [str(lite0)], []
    for backbone in REAL_META_EMBEDDING_BACKBONES[1:]:
        grid_run = runs_root / "real" / f"ptbxl-{backbone}-bn-noaug"
        if (grid_run / "features.npz").is_file():
            run_dirs.append(str(grid_run))
        else:
            extra.append(backbone)
    return {"run_dirs": ",".join(run_dirs), "extra_backbones": ",".join(extra)}


def real_chapter_parameters(real: Path,
                            runs_root: Path | None = None) -> dict[str, dict[str, Any]]:
    """papermill parameters of each chapter output of the real edition (by output stem).

    Chapters 03-05 are not listed: they are the run notebooks of :data:`REAL_CHAPTER_CONFIG`.
    ``runs_root`` is the folder of run folders (default ``<project>/runs``); chapters 09 and 10
    use the real grid's runs in it where present (:func:`meta_embedding_sources`).
    """
    from fusion_utils.experiments.real_edition import (
        HAM_IMAGE_DIR,
        SPLIT_SCHEME,
        real_manifest_path,
        results_dir,
    )
    from fusion_utils.paths import project_root

    ptbxl, ham = str(real / "ptbxl"), str(real / "ham10000")
    man_p, man_h = str(real_manifest_path("ptbxl")), str(real_manifest_path("ham10000"))
    runs_root = Path(runs_root) if runs_root is not None else project_root() / "runs"
    runs = runs_root / REAL_CHECK_RUNS
    return {
        "01_data_preparation_ptbxl": {"dataset": "ptbxl", "data_dir": ptbxl,
                                      "split_scheme": SPLIT_SCHEME, "manifest_path": man_p},
        "01_data_preparation_ham10000": {"dataset": "ham10000", "data_dir": ham,
                                         "split_scheme": SPLIT_SCHEME, "manifest_path": man_h,
                                         "image_dir": HAM_IMAGE_DIR},
        "02_scalograms": {"data_dir": ptbxl, "manifest_path": man_p},
        "06_interpretability": {"dataset": "ptbxl", "manifest_path": man_p,
                                "run_dirs": str(runs / REAL_CHAPTER_CONFIG["ptbxl"])},
        "07_metadata_only_ptbxl": {"dataset": "ptbxl", "data_dir": ptbxl},
        "07_metadata_only_ham10000": {"dataset": "ham10000", "data_dir": ham},
        "08_results": {"results_path": str(results_dir() / "results.parquet"),
                       "paper_runs_dir": "none", "resolution_data_dir": ham,
                       "resolution_run_dir": str(runs / REAL_CHAPTER_CONFIG["ham10000"])},
        # lite0 from the build's re-computed run; lite1/lite2 from the real grid's runs when
        # runs/real holds them (a local `fusion-grid run experiments/real.yaml`), else extracted
        # by the chapter (cached)
        "09_meta_embeddings": {"dataset": "ptbxl", "manifest_path": man_p,
                               **meta_embedding_sources(runs_root), "n_bootstrap": 1000},
        # live on 200 real PTB-XL records of the build's BN run, with the real grid's FT run
        # when runs/real holds it (else BN vs AE); the committed 1,533-record table too
        "10_autoencoder_features": {
            "dataset": "ptbxl", "manifest_path": man_p,
            "bn_run": str(runs / REAL_CHAPTER_CONFIG["ptbxl"]),
            "ft_run": str(runs_root / "real" / "ptbxl-efficientnet_lite0-ft-noaug")},
        # live on a seeded subset of the real data; the committed 256-image table is shown too
        "11_domain_similarity": {"ham_manifest": man_h, "ptbxl_manifest": man_p,
                                 "results_path": str(results_dir() / "results.parquet")},
    }


def write_edition_config(root: str | os.PathLike[str], dest: str | os.PathLike[str],
                         text: str, base: str | os.PathLike[str] | None = None) -> Path:
    """Write the book configuration with ``html.announcement`` set to ``text``.

    ``base`` is the configuration to start from (default ``<root>/_config.yml``), e.g. the one
    :func:`fusion_book.settings.write_book_config` wrote. Relative ``sphinx.local_extensions``
    folders become absolute (from ``root``).
    """
    import yaml

    from fusion_utils.io import atomic_write_text

    source = Path(base) if base else Path(root) / "_config.yml"
    config: dict[str, Any] = yaml.safe_load(source.read_text("utf-8")) or {}
    config["html"] = {**(config.get("html") or {}), "announcement": text}
    # Jupyter Book resolves local extension folders against the configuration file's folder
    # (config.get_final_config), not the book's: make them absolute so ``dest`` may live anywhere.
    sphinx = config.get("sphinx") or {}
    if sphinx.get("local_extensions"):
        sphinx["local_extensions"] = {
            name: str((Path(root) / path).resolve()) if not Path(path).is_absolute() else path
            for name, path in sphinx["local_extensions"].items()}
    return atomic_write_text(dest, yaml.safe_dump(config, sort_keys=False))


def tree_rss(pid: int | None = None) -> int:
    """Resident memory (bytes) of process ``pid`` (default: this one) and all its descendants.

    Uses :mod:`psutil`; processes that end while being read are skipped.
    """
    import psutil

    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


@dataclass
class StageTimer:
    """Wall-clock seconds and peak memory per build stage, printed as a table after the build.

    While a stage runs, a background thread samples :func:`tree_rss` (the build process with
    its notebook kernels and grid workers, summed) every ``interval`` seconds; the stage's peak
    is the largest sample. A child that lives shorter than one interval can be missed, so the
    figure is a lower bound on the true peak (within one interval's allocations).
    """

    stages: list[tuple[str, float]] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    interval: float = 0.5

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name`` (recorded even when it raises)."""
        import threading

        peak = [tree_rss()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                peak[0] = max(peak[0], tree_rss())

        sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            done.set()
            sampler.join()
            self.stages.append((name, seconds))
            self.peaks.append(max(peak[0], tree_rss()))

    @property
    def peak_bytes(self) -> int:
        """Largest resident memory of the build's process tree over all stages (bytes)."""
        return max(self.peaks, default=0)

    def table(self) -> str:
        """Plain-text table: stage, seconds, minutes, share of the total, peak memory (GiB)."""
        total = sum(s for _, s in self.stages)
        width = max([len("stage"), len("total"), *(len(n) for n, _ in self.stages)])
        lines = [f"{'stage':<{width}}  {'seconds':>8}  {'minutes':>7}  {'share':>6}  "
                 f"{'peak GiB':>8}"]
        peaks = self.peaks if len(self.peaks) == len(self.stages) else [0] * len(self.stages)
        for (name, sec), peak in zip(self.stages, peaks, strict=True):
            share = sec / total if total else 0.0
            lines.append(f"{name:<{width}}  {sec:8.1f}  {sec / 60:7.2f}  {share:6.1%}  "
                         f"{peak / 2**30:8.2f}")
        lines.append(f"{'total':<{width}}  {total:8.1f}  {total / 60:7.2f}  {1:6.1%}  "
                     f"{max(peaks, default=0) / 2**30:8.2f}")
        return "\n".join(lines)
