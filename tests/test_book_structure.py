"""The book's structure: notebooks, table of contents, committed files, bibliography, MathJax.

These checks run in seconds without building the book; they catch what would otherwise only
fail the (long) ``make book`` or, worse, render wrongly: a missing ``parameters`` cell, a table
of contents entry with no source, an executed notebook committed, a citation key missing from
``book/references.bib``, a label that two executions of one notebook would duplicate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from fusion_utils.paths import project_root

ROOT = project_root(Path(__file__).parent)
BOOK = ROOT / "book"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
EXECUTED_PREFIX = "book/executed/"
CITE_RE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
EQ_REF_RE = re.compile(r"\{eq\}`([^`]+)`")
DOC_REF_RE = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`")
LABEL_RE = re.compile(r"^\s*(?:#\s*)?:label:\s*(\S+)", re.MULTILINE)
DOLLAR_LABEL_RE = re.compile(r"\$\$\s*\((\S+)\)\s*$", re.MULTILINE)


def _read_notebook(path: Path) -> Any:
    import jupytext

    return jupytext.read(path)


def _toc() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def _toc_files(node: Any) -> list[str]:
    """Every ``file`` (and ``root``) in a Jupyter Book table of contents, in order."""
    files: list[str] = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                files.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                files.extend(_toc_files(child))
    return files


def _notebook_for_executed(stem: str) -> str | None:
    """The notebook stem an executed page comes from: ``04_fusion_ptbxl`` -> ``04_fusion``."""
    matches = [nb.stem for nb in NOTEBOOKS if stem == nb.stem or stem.startswith(nb.stem + "_")]
    return max(matches, key=len) if matches else None


def _markdown_sources() -> dict[str, str]:
    """Markdown text of the book's pages and of the notebooks' markdown cells, by name."""
    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md")
             if "_static" not in p.parts and "executed" not in p.parts}
    for nb_path in NOTEBOOKS:
        nb = _read_notebook(nb_path)
        texts[str(nb_path.relative_to(ROOT))] = "\n".join(
            c.source for c in nb.cells if c.cell_type == "markdown")
    return texts


# -- notebooks -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell_and_a_markdown_opening(path: Path) -> None:
    nb = _read_notebook(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: the jupytext header needs a kernelspec with name python3")
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, (
        f"{path.name}: {len(tagged)} cells tagged 'parameters' (cells {tagged}); papermill needs "
        "exactly one `# %% tags=[\"parameters\"]` cell (and no cell_metadata_filter '-all')")
    assert nb.cells[tagged[0]].cell_type == "code"
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be markdown"
    lines = [ln for ln in first.source.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("# "), (
        f"{path.name}: the first markdown cell must open with the chapter's '# Title'")
    assert len(" ".join(lines[1:]).split()) >= 20, (
        f"{path.name}: the first markdown cell must say what the chapter answers and which "
        "parameters change it (a few sentences after the title)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_source_holds_no_outputs(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n# jupyter:"), f"{path.name}: missing the jupytext header"
    for marker in ('"outputs":', '"execution_count":', "image/png", "data:image/"):
        assert marker not in text, f"{path.name}: contains {marker!r}, i.e. executed output"
    nb = _read_notebook(path)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_with_exercises_and_hidden_solutions(path: Path) -> None:
    nb = _read_notebook(path)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^#+ .*exercise", md, re.IGNORECASE | re.MULTILINE), (
        f"{path.name}: no '## Exercises' heading")
    assert md.count("fusion-book run") + md.count("| papermill") >= 2, (
        f"{path.name}: each exercise gives the command (fusion-book run, or the jupytext | "
        "papermill pipe) that runs its variant")
    assert re.search(r":class:\s*dropdown", md), (
        f"{path.name}: solutions go in an admonition with `:class: dropdown` (folded)")


GLUED_CHAPTERS = ("05_evaluation", "06_interpretability", "07_metadata_only", "08_results")
GLUE_FIGURE_RE = re.compile(r"```\{glue:figure\}\s*(\S+)\s*\n(.*?)```", re.DOTALL)
GLUE_CALL_RE = re.compile(r"""\bglue\(\s*["'](\w+)["']""")


@pytest.mark.parametrize("path", [nb for nb in NOTEBOOKS if nb.stem in GLUED_CHAPTERS],
                         ids=lambda p: p.stem)
def test_glued_chapters_caption_every_figure_with_the_data(path: Path) -> None:
    """ARCHITECTURE.md: chapters 05-08 glue each figure, captioned with the glued data_label."""
    nb = _read_notebook(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "plt.show()" not in code, f"{path.name}: figures are glued, not shown inline"
    glued = GLUE_CALL_RE.findall(code)
    assert "data_label" in glued, f"{path.name}: glue a `data_label` naming the data"
    figures = {k for k in glued if k.startswith("fig")}
    blocks = dict(GLUE_FIGURE_RE.findall(md))
    assert figures, f"{path.name}: no glued figure"
    assert set(blocks) == figures, (
        f"{path.name}: glued figures {sorted(figures)} vs {{glue:figure}} blocks {sorted(blocks)}")
    bare = [k for k, body in blocks.items() if "{glue:text}`data_label`" not in body]
    assert not bare, f"{path.name}: captions that do not name the data (data_label): {bare}"


@pytest.mark.parametrize("path", [nb for nb in NOTEBOOKS if nb.stem not in GLUED_CHAPTERS],
                         ids=lambda p: p.stem)
def test_inline_chapters_caption_every_figure(path: Path) -> None:
    """ARCHITECTURE.md: in chapters 01-04 the markdown cell after a figure opens with its
    caption (``*Figure: ...*``)."""
    nb = _read_notebook(path)
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "plt.show()" not in cell.source:
            continue
        following = next((c for c in nb.cells[i + 1:] if c.cell_type == "markdown"), None)
        first = following.source.strip() if following is not None else ""
        if not re.match(r"^\*{1,2}Figures?\b", first):
            missing.append(f"cell {i}")
    assert not missing, (f"{path.name}: figures without a caption (`*Figure: ...*` opening the "
                         f"next markdown cell): {missing}")


@pytest.mark.parametrize("path", [nb for nb in NOTEBOOKS
                                  if nb.stem.startswith(("03_", "04_", "06_", "07_"))],
                         ids=lambda p: p.stem)
def test_chapters_draw_no_figure_inline(path: Path) -> None:
    """Issue 12: chapters 03, 04, 06 and 07 call their stage's plots module for every figure."""
    code = "\n".join(c.source for c in _read_notebook(path).cells if c.cell_type == "code")
    drawing = re.findall(r"\b(?:plt\.subplots|plt\.figure|sns\.(?!set_theme)\w+|ax\d?\.\w+)\(",
                         code)
    assert not drawing, f"{path.name}: draws inline ({sorted(set(drawing))}); call a plots function"


def test_notebooks_run_per_dataset_define_no_labels() -> None:
    """A notebook executed twice (once per dataset) would define every label twice: -W fails."""
    counts = Counter(_notebook_for_executed(f.removeprefix(EXECUTED_PREFIX))
                     for f in _toc_files(_toc()) if f.startswith(EXECUTED_PREFIX))
    offenders = []
    for nb_path in NOTEBOOKS:
        if counts.get(nb_path.stem, 0) < 2:
            continue
        nb = _read_notebook(nb_path)
        for i, cell in enumerate(nb.cells):
            src = cell.source
            figure_meta = cell.metadata.get("mystnb", {}).get("figure", {})
            if ("name" in figure_meta or re.search(r"^\s*:(name|label):", src, re.MULTILINE)
                    or re.search(r"^\(\S+\)=\s*$", src, re.MULTILINE)
                    or DOLLAR_LABEL_RE.search(src)):
                offenders.append(f"{nb_path.name} cell {i}")
    assert not offenders, (
        "these notebooks are executed once per dataset, so a label (`:name:`, `:label:`, "
        "`(target)=`, `$$ (label)`, mystnb figure name) would be defined twice and fail the "
        "strict build; keep captions numbered but unnamed: " + ", ".join(offenders))


# -- table of contents -----------------------------------------------------------------------

def test_toc_entries_exist_or_are_built() -> None:
    toc = _toc()
    assert toc.get("format") == "jb-book"
    problems = []
    for entry in _toc_files(toc):
        if entry.startswith(EXECUTED_PREFIX):
            stem = entry.removeprefix(EXECUTED_PREFIX)
            if _notebook_for_executed(stem) is None and NOTEBOOKS:
                problems.append(f"{entry}: no notebooks/<stem>.py whose stem prefixes {stem!r}")
        elif not any((ROOT / f"{entry}{ext}").is_file() for ext in ("", ".md", ".ipynb")):
            problems.append(f"{entry}: no {entry}.md or {entry}.ipynb")
    assert not problems, "\n".join(problems)


def test_every_notebook_is_in_the_book() -> None:
    stems = {_notebook_for_executed(f.removeprefix(EXECUTED_PREFIX))
             for f in _toc_files(_toc()) if f.startswith(EXECUTED_PREFIX)}
    missing = [nb.stem for nb in NOTEBOOKS if nb.stem not in stems]
    assert not missing, f"notebooks not listed in _toc.yml (as book/executed/<stem>...): {missing}"


def test_doc_references_point_at_pages_of_the_book() -> None:
    pages = {f.removeprefix("book/") for f in _toc_files(_toc())}
    bad = []
    for name, text in _markdown_sources().items():
        if not name.startswith("book/"):
            continue
        for target in DOC_REF_RE.findall(text):
            if target.lstrip("/").removeprefix("book/") not in pages:
                bad.append(f"{name}: {{doc}}`{target}`")
    assert not bad, "references to pages not in _toc.yml:\n" + "\n".join(bad)


# -- committed files -------------------------------------------------------------------------

def test_no_executed_notebook_is_committed() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == [], f"notebooks with outputs are committed: {tracked}"


# -- bibliography ----------------------------------------------------------------------------

def test_references_bib_parses_and_entries_are_complete() -> None:
    from pybtex.database import parse_file

    db = parse_file(str(BOOK / "references.bib"))
    assert len(db.entries) >= 25
    for key, entry in db.entries.items():
        assert entry.persons.get("author"), f"{key}: no author"
        assert "title" in entry.fields and "year" in entry.fields, f"{key}: no title or year"
        assert re.fullmatch(r"(19|20)\d\d", entry.fields["year"]), f"{key}: odd year"
    for key in ("thomas2021enhanced", "wagner2020ptbxl", "tschandl2018ham10000",
                "delong1988comparing", "lilly2012generalized"):
        assert key in db.entries
    assert db.entries["wagner2020ptbxl"].fields["doi"] == "10.1038/s41597-020-0495-6"
    assert db.entries["tschandl2018ham10000"].fields["doi"] == "10.1038/sdata.2018.161"


def test_every_cited_key_is_in_references_bib() -> None:
    from pybtex.database import parse_file

    keys = set(parse_file(str(BOOK / "references.bib")).entries)
    missing = []
    for name, text in _markdown_sources().items():
        for group in CITE_RE.findall(text):
            missing += [f"{name}: {k.strip()}" for k in group.split(",") if k.strip() not in keys]
    assert not missing, "cited but not in book/references.bib:\n" + "\n".join(missing)


def test_equation_references_resolve() -> None:
    sources = _markdown_sources()
    labels = set()
    for text in sources.values():
        labels |= set(LABEL_RE.findall(text)) | set(DOLLAR_LABEL_RE.findall(text))
    bad = [f"{name}: {ref}" for name, text in sources.items()
           for ref in EQ_REF_RE.findall(text) if ref not in labels]
    assert not bad, "{eq} references without a labelled equation:\n" + "\n".join(bad)


def test_methods_has_the_papers_five_equations() -> None:
    text = (BOOK / "methods.md").read_text(encoding="utf-8")
    labels = LABEL_RE.findall(text)
    for label in ("eq-features", "eq-metadata-map", "eq-fusion", "eq-softmax", "eq-cwt"):
        assert label in labels
    # the paper's order: (1) F, (2) G, (3) H, (4) softmax, (5) CWT
    order = [labels.index(x) for x in ("eq-features", "eq-metadata-map", "eq-fusion",
                                       "eq-softmax", "eq-cwt")]
    assert order == sorted(order)


# -- offline rendering -----------------------------------------------------------------------

def test_mathjax_is_vendored_and_configured() -> None:
    mj = BOOK / "_static" / "mathjax"
    script = mj / "tex-chtml-full.js"
    assert script.is_file() and script.stat().st_size > 1_000_000
    fonts = list((mj / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_*.woff"))
    assert len(fonts) >= 20
    assert "Apache License" in (mj / "LICENSE").read_text(encoding="utf-8")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx_cfg = (config.get("sphinx") or {}).get("config") or {}
    mathjax_path = sphinx_cfg.get("mathjax_path", "")
    static = sphinx_cfg.get("html_static_path", [])
    assert mathjax_path and "://" not in mathjax_path, (
        "_config.yml: set sphinx.config.mathjax_path to the vendored MathJax "
        "(mathjax/tex-chtml-full.js) and html_static_path: [book/_static]; otherwise MathJax "
        "comes from a CDN and offline pages show raw TeX")
    assert any((ROOT / s / mathjax_path).is_file() for s in static), (
        f"mathjax_path {mathjax_path!r} is not under any html_static_path {static}")
