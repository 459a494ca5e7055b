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
    "real_chapter_parameters",
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


def real_chapter_parameters(real: Path) -> dict[str, dict[str, Any]]:
    """papermill parameters of each chapter output of the real edition (by output stem).

    Chapters 03-05 are not listed: they are the run notebooks of :data:`REAL_CHAPTER_CONFIG`.
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
    runs = project_root() / "runs" / REAL_CHECK_RUNS
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
        # the real grid's BN features of every backbone (runs/real, local), nothing extracted
        "09_meta_embeddings": {"dataset": "ptbxl", "manifest_path": man_p, "extra_backbones": "",
                               "run_dirs": str(project_root() / "runs" / "real"
                                               / "ptbxl-efficientnet_lite*-bn-noaug"),
                               "n_bootstrap": 1000},
        # live on 200 real PTB-XL records (the real BN run); the committed 1,533-record table too
        "10_autoencoder_features": {
            "dataset": "ptbxl", "manifest_path": man_p,
            "bn_run": str(project_root() / "runs" / "real" / "ptbxl-efficientnet_lite0-bn-noaug"),
            "ft_run": str(project_root() / "runs" / "real" / "ptbxl-efficientnet_lite0-ft-noaug")},
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


@dataclass
class StageTimer:
    """Wall-clock seconds per build stage, printed as a table at the end of the build."""

    stages: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name`` (recorded even when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages.append((name, time.perf_counter() - t0))

    def table(self) -> str:
        """Plain-text table: stage, seconds, minutes, share of the total, and the total."""
        total = sum(s for _, s in self.stages)
        width = max([len("stage"), len("total"), *(len(n) for n, _ in self.stages)])
        lines = [f"{'stage':<{width}}  {'seconds':>8}  {'minutes':>7}  {'share':>6}"]
        for name, sec in self.stages:
            share = sec / total if total else 0.0
            lines.append(f"{name:<{width}}  {sec:8.1f}  {sec / 60:7.2f}  {share:6.1%}")
        lines.append(f"{'total':<{width}}  {total:8.1f}  {total / 60:7.2f}  {1:6.1%}")
        return "\n".join(lines)
