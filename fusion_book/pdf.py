"""One PDF of the whole book, offline: every page printed by headless Chromium, merged in order.

``python -m fusion_book.pdf _build/html`` (``make pdf``) serves the built HTML on 127.0.0.1,
opens each page of ``_toc.yml`` in order in the headless Chromium that the reader check drives
(:mod:`fusion_book.check`: the DevTools pipe, every other host unresolvable), waits for MathJax
to typeset the equations and for the figures to load, prints it with ``Page.printToPDF`` (A4,
the theme's print stylesheet hides the navigation), and merges the pages with pypdf into
``_build/pdf/book.pdf``, with one bookmark per page named after its title.

``python -m fusion_book.pdf --check _build/pdf/book.pdf`` checks a written PDF: its page count,
and that every chapter title of the built book appears in its text (pypdf's text extraction).

Why not ``jupyter-book build --builder pdfhtml``: it downloads its own Chromium through
pyppeteer; why not LaTeX: the book's notebook outputs (HTML tables, widgets) do not survive it.
"""

from __future__ import annotations

import argparse
import base64
import html as html_lib
import io
import os
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fusion_utils.io import atomic_path

__all__ = ["BookPdf", "check_pdf", "main", "page_title", "toc_pages", "write_pdf"]

#: A4 in inches, and margins (inches) for ``Page.printToPDF``.
PAPER = {"paperWidth": 8.27, "paperHeight": 11.69, "marginTop": 0.5, "marginBottom": 0.5,
         "marginLeft": 0.5, "marginRight": 0.5}

_H1_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.DOTALL | re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class BookPdf:
    """A written PDF: its path, number of pages, size in bytes and the titles it contains."""

    path: Path
    n_pages: int
    n_bytes: int
    titles: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{self.path}: {self.n_pages} pages, {self.n_bytes / 2**20:.1f} MiB, "
                f"{len(self.titles)} book pages")


def toc_pages(root: str | os.PathLike[str]) -> list[str]:
    """The book's documents in ``_toc.yml`` order (``root``, then every part's chapters and
    their sections), as Sphinx docnames such as ``book/intro``."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return [re.sub(r"\.(md|ipynb)$", "", p) for p in pages]


def page_title(html_file: str | os.PathLike[str]) -> str:
    """The page's first ``<h1>`` as plain text (the headerlink ``#`` removed)."""
    text = Path(html_file).read_text(encoding="utf-8", errors="replace")
    match = _H1_RE.search(text)
    if not match:
        return Path(html_file).stem
    title = html_lib.unescape(_TAG_RE.sub("", match.group(1)))
    return re.sub(r"\s+", " ", title).replace("#", "").strip()


def _print_page(tools, base: str, page: str, timeout: float) -> bytes:
    from fusion_book import check

    tools.drain_events()
    nav = tools.call("Page.navigate", {"url": base + page}, timeout=timeout)
    if nav.get("errorText"):
        raise RuntimeError(f"{page}: {nav['errorText']}")
    tools.wait_event("Page.loadEventFired", timeout)
    # The reader check's probe waits for MathJax's typesetting and for every image.
    probe = check._PAGE_PROBE % {"math_timeout_ms": int(timeout * 600),
                                 "image_timeout_ms": int(timeout * 300), "settle_ms": 200}
    tools.call("Runtime.evaluate", {"expression": probe, "awaitPromise": True,
                                    "returnByValue": True}, timeout=timeout + 5)
    pdf = tools.call("Page.printToPDF", {**PAPER, "printBackground": True,
                                         "preferCSSPageSize": False}, timeout=timeout * 4)
    return base64.b64decode(pdf["data"])


def write_pdf(html_dir: str | os.PathLike[str] = "_build/html",
              output: str | os.PathLike[str] | None = None, *,
              root: str | os.PathLike[str] | None = None,
              browser: str | os.PathLike[str] | None = None, timeout: float = 60.0,
              verbose: bool = True) -> BookPdf:
    """Print every page of the built book in ``_toc.yml`` order into one PDF.

    Parameters
    ----------
    html_dir : path-like
        The built HTML (``_build/html``).
    output : path-like, optional
        The PDF to write; default ``<html_dir>/../pdf/book.pdf``.
    root : path-like, optional
        The book's root (holding ``_toc.yml``); default the project root.
    browser : path-like, optional
        Chromium executable (:func:`fusion_book.check.find_browser`).
    timeout : float
        Seconds per page for loading, typesetting and printing.
    verbose : bool
        One line per printed page.
    """
    from pypdf import PdfReader, PdfWriter

    from fusion_book.check import _DevTools, find_browser, serve_directory
    from fusion_utils.paths import project_root

    html = Path(html_dir).resolve()
    if not (html / "index.html").is_file():
        raise FileNotFoundError(f"{html} holds no built book: run `make book` first")
    out = Path(output) if output else html.parent / "pdf" / "book.pdf"
    docs = toc_pages(root or project_root())
    pages = [f"{d}.html" for d in docs]
    missing = [p for p in pages if not (html / p).is_file()]
    if missing:
        raise FileNotFoundError(f"pages of _toc.yml missing from {html}: {', '.join(missing)}")
    exe = find_browser(browser)
    writer = PdfWriter()
    titles = []
    with serve_directory(html) as base, _DevTools(exe) as tools:
        for page in pages:
            t0 = time.perf_counter()
            data = _print_page(tools, base, page, timeout)
            reader = PdfReader(io.BytesIO(data))
            first = len(writer.pages)
            writer.append(reader)
            title = page_title(html / page)
            titles.append(title)
            writer.add_outline_item(title=title, page_number=first)
            if verbose:
                print(f"  {page}: {len(reader.pages)} pages ({time.perf_counter() - t0:.1f} s)",
                      flush=True)
    writer.add_metadata({"/Title": titles[0] if titles else "book"})
    with atomic_path(out, suffix=".pdf") as tmp, open(tmp, "wb") as fh:
        writer.write(fh)
    return BookPdf(out, len(writer.pages), out.stat().st_size, tuple(titles))


def _squash(text: str) -> str:
    """Letters and digits only, lower case, after NFKC (PDF text has ligatures such as "ﬁ")."""
    return re.sub(r"[^0-9a-z]+", "", unicodedata.normalize("NFKC", text).lower())


def check_pdf(pdf: str | os.PathLike[str], titles: Sequence[str], *,
              min_pages: int | None = None) -> list[str]:
    """Problems with a written book PDF (empty when fine).

    Every title must appear in the PDF's extracted text (compared on letters and digits only,
    as line breaks and hyphenation vary), and the PDF must have at least ``min_pages`` pages
    (default: one per title).
    """
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    problems = []
    need = len(titles) if min_pages is None else min_pages
    if len(reader.pages) < need:
        problems.append(f"{pdf}: {len(reader.pages)} pages, expected at least {need}")
    text = _squash(" ".join(page.extract_text() or "" for page in reader.pages))
    problems += [f"{pdf}: title not found: {t!r}" for t in titles if _squash(t) not in text]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fusion_book.pdf [_build/html] [-o OUT] [--check PDF]``."""
    parser = argparse.ArgumentParser(prog="python -m fusion_book.pdf",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html")
    parser.add_argument("-o", "--output", default=None, help="default: _build/pdf/book.pdf")
    parser.add_argument("--check", metavar="PDF", default=None,
                        help="only check PDF: page count and every page title of html_dir")
    parser.add_argument("--browser", default=None, help="Chromium executable")
    args = parser.parse_args(argv)
    from fusion_book.check import BrowserNotFoundError
    from fusion_utils.paths import project_root

    html = Path(args.html_dir)
    try:
        if args.check:
            titles = [page_title(html / f"{d}.html") for d in toc_pages(project_root())]
            problems = check_pdf(args.check, titles)
            for p in problems:
                print(p, file=sys.stderr)
            if not problems:
                print(f"{args.check}: every one of {len(titles)} page titles found")
            return 1 if problems else 0
        result = write_pdf(html, args.output, browser=args.browser)
    except (BrowserNotFoundError, FileNotFoundError, RuntimeError) as exc:
        print(f"fusion_book.pdf: {exc}", file=sys.stderr)
        return 2
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
