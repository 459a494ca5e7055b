"""What each chapter needs before it starts, and the header the build puts under its title.

:data:`NEEDS` says, per chapter notebook, which earlier chapter's output and which data it reads
(the folders are those of ``ARCHITECTURE.md``). :func:`annotate_executed` inserts, under the
title of every executed chapter in ``book/executed/``, a small admonition with

- what the chapter needs (:data:`NEEDS`),
- how long it took in this build and on which machine (papermill's
  ``metadata.papermill.duration`` and :func:`fusion_book.runtimes.load_machine`), with the
  parameters it ran with,
- download links for the executed notebook (``.ipynb``) and its source (``notebooks/*.py``),
  written with Sphinx's ``{download}`` role so that both files are copied into the built site
  (``_build/html/_downloads/``) and a missing file fails the strict build.

The header sits between two HTML comments and is replaced, not repeated, when the build runs
again on the same executed notebooks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fusion_book.runtimes import (
    RUNTIMES_PAGE,
    format_seconds,
    load_machine,
    machine_line,
    parameters_text,
)
from fusion_utils.io import atomic_write_text

__all__ = ["NEEDS", "annotate_executed", "chapter_header", "source_notebook"]

#: Per chapter notebook: (earlier output it reads, data it reads).
NEEDS: dict[str, tuple[str, str]] = {
    "01_data_preparation": (
        "nothing: this is the first chapter",
        "the demo cohort (`make demo`, written by `make book`) or a PTB-XL / HAM10000 folder "
        "(`data_dir`); it writes the manifest `cache/manifests/<dataset>.parquet`"),
    "02_scalograms": (
        "chapter 1's PTB-XL manifest when it describes the same folder (otherwise the table is "
        "read directly)",
        "PTB-XL signals: the demo cohort or a PTB-XL folder (`data_dir`)"),
    "03_feature_extraction": (
        "chapter 1's manifest (built with the defaults when missing); for PTB-XL the "
        "scalogram montages of chapter 2 (computed and cached when missing)",
        "the images or signals the manifest points to; it writes `features.npz` into the run "
        "folder"),
    "04_fusion": (
        "chapter 3's `features.npz` in the same run folder (`run_dir`) and chapter 1's manifest",
        "the manifest's metadata columns; no image is read"),
    "05_evaluation": (
        "chapter 4's predictions in the same run folder (`run_dir`)",
        "none beyond the run folder"),
    "06_interpretability": (
        "run folders of chapters 3 and 4 (by default every book-grid run of the dataset, "
        "`runs/book`)",
        "chapter 1's manifest for the metadata columns"),
    "07_metadata_only": (
        "nothing: the chapter stands alone",
        "the metadata tables only (demo cohort or the real tables, `data_dir`), no signal or "
        "image"),
    "08_results": (
        "the book grid's results (`runs/book/results.parquet`, written by `make book` or "
        "`python -m fusion_utils.experiments run experiments/book.yaml`)",
        "none beyond the runs folder"),
    "09_meta_embeddings": (
        "the book grid's BN/FT run folders (`runs/book`, their `features.npz`), chapter 1's "
        "manifest and, when committed, `results/real/meta_embedding/`",
        "the cached features only (with `extra_backbones`, the images or montages those "
        "backbones read)"),
    "10_autoencoder_features": (
        "the book grid's BN and FT run folders of efficientnet_lite0 (`runs/book`), chapter 1's "
        "manifest and, when committed, `results/real/autoencoder/`",
        "the images or PTB-XL montages (their feature maps are cached in float16); the offline "
        "EfficientNet-Lite weights"),
    "11_domain_similarity": (
        "chapter 1's two manifests, the book grid's results (`runs/book`) and, when committed, "
        "`results/real/domain_similarity/` and `results/real/results.parquet`",
        "a seeded subset of the images and PTB-XL montages (cached by chapter 2/3, drawn when "
        "missing); the offline EfficientNet-Lite weights"),
}

_START, _END = "<!-- fusion-book:header -->", "<!-- /fusion-book:header -->"
_HEADER_RE = re.compile(re.escape(_START) + r".*?" + re.escape(_END) + r"\n*", re.DOTALL)


def source_notebook(page: str) -> str:
    """The notebook stem behind an executed page (``04_fusion_ptbxl`` -> ``04_fusion``)."""
    for stem in sorted(NEEDS, key=len, reverse=True):
        if page == stem or page.startswith(stem + "_"):
            return stem
    raise KeyError(f"no chapter notebook for page {page!r}; known: {', '.join(NEEDS)}")


def chapter_header(page: str, *, duration: float | None, parameters: dict[str, Any],
                   machine: dict[str, Any]) -> str:
    """The MyST admonition put under an executed chapter's title (see the module docstring)."""
    stem = source_notebook(page)
    earlier, data = NEEDS[stem]
    shown = parameters_text(parameters, default="default parameters")
    ran = (f"{format_seconds(duration)} in this build ({shown}) on "
           f"{machine_line(machine)}; all chapters: {{doc}}`{RUNTIMES_PAGE}`"
           if duration is not None else "not measured in this build")
    return "\n".join([
        _START,
        "```{admonition} Before you start",
        ":class: note",
        f"- **Needs:** {earlier}.",
        f"- **Data:** {data}.",
        f"- **Run time:** {ran}.",
        f"- **Download:** {{download}}`executed notebook (.ipynb) <{page}.ipynb>`, "
        f"{{download}}`source (.py) <../../notebooks/{stem}.py>`; run it with "
        f"`fusion-book run {stem} out.ipynb` (parameters: `fusion-book params {stem}`).",
        "```",
        _END,
        "",
    ])


def _insert_after_title(source: str, header: str) -> str:
    source = _HEADER_RE.sub("", source)
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return "\n".join([*lines[: i + 1], "", header, *lines[i + 1 :]]).rstrip("\n")
    return header + "\n" + source


def annotate_executed(executed: str | os.PathLike[str]) -> list[Path]:
    """Put :func:`chapter_header` under the title of every executed chapter; return the files.

    Notebooks whose stem is not a chapter (none today) are left alone.
    """
    import nbformat

    executed = Path(executed)
    machine = load_machine(executed)
    done = []
    for path in sorted(executed.glob("*.ipynb")):
        try:
            source_notebook(path.stem)
        except KeyError:
            continue
        nb = nbformat.read(path, as_version=4)
        pm = nb.metadata.get("papermill") or {}
        header = chapter_header(path.stem, duration=pm.get("duration"),
                                parameters=dict(pm.get("parameters") or {}), machine=machine)
        cell = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        if cell is None:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(header))
        else:
            cell.source = _insert_after_title(cell.source, header)
        atomic_write_text(path, nbformat.writes(nb))
        done.append(path)
    return done
