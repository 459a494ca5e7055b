"""The book's PDF: pages printed in _toc.yml order by headless Chromium, merged with pypdf."""

from __future__ import annotations

import pytest
from pypdf import PdfReader

from fusion_book import pdf
from fusion_book.check import BrowserNotFoundError, find_browser
from fusion_utils.paths import project_root

TOC = """format: jb-book
root: book/intro
parts:
  - caption: One
    chapters:
      - file: book/executed/02_second
        sections:
          - file: book/executed/02b_section
  - caption: Two
    chapters:
      - file: book/first_written_last
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}<a class='headerlink' href='#x'>#</a></h1>{body}</body></html>")


@pytest.fixture
def tiny_site(tmp_path):
    (tmp_path / "_toc.yml").write_text(TOC)
    html = tmp_path / "_build" / "html"
    (html / "book" / "executed").mkdir(parents=True)
    (html / "index.html").write_text("<meta http-equiv='refresh' content='0; url=book/intro.html'>")
    pages = {"book/intro": "Welcome page", "book/executed/02_second": "Second chapter &amp; more",
             "book/executed/02b_section": "A section",
             "book/first_written_last": "Closing chapter"}
    for doc, title in pages.items():
        long = "<p>text</p>" * (400 if doc.endswith("second") else 1)  # several pages
        (html / f"{doc}.html").write_text(_page(title, long))
    return tmp_path, html


def test_toc_pages_in_order(tiny_site):
    root, _ = tiny_site
    assert pdf.toc_pages(root) == ["book/intro", "book/executed/02_second",
                                   "book/executed/02b_section", "book/first_written_last"]
    real = pdf.toc_pages(project_root())
    assert real[0] == "book/intro" and "book/executed/04_fusion_ptbxl" in real


def test_page_title_is_the_h1_without_the_headerlink(tiny_site):
    _, html = tiny_site
    assert pdf.page_title(html / "book/executed/02_second.html") == "Second chapter & more"


def test_pdf_refuses_without_a_built_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="make book"):
        pdf.write_pdf(tmp_path, tmp_path / "x.pdf", root=project_root())


def test_pdf_has_every_page_in_order_and_the_check_catches_a_missing_title(tiny_site):
    try:
        find_browser()
    except BrowserNotFoundError as exc:
        pytest.skip(f"headless Chromium is not installed ({exc})")
    root, html = tiny_site
    out = root / "book.pdf"
    result = pdf.write_pdf(html, out, root=root, verbose=False)
    reader = PdfReader(str(out))
    assert result.n_pages == len(reader.pages) >= 5  # the long chapter spans several pages
    assert [o["/Title"] for o in reader.outline] == [
        "Welcome page", "Second chapter & more", "A section", "Closing chapter"]
    starts = [reader.get_destination_page_number(o) for o in reader.outline]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] == len(reader.pages) - 1
    assert "Closing chapter" in reader.pages[-1].extract_text()
    assert pdf.check_pdf(out, result.titles) == []
    assert pdf.check_pdf(out, [*result.titles, "A chapter that is not there"]) == [
        f"{out}: title not found: 'A chapter that is not there'"]
    assert pdf.check_pdf(out, result.titles, min_pages=999)[0].endswith("expected at least 999")


def test_titles_match_through_pdf_ligatures() -> None:
    """Chromium's PDFs set "fi" as one ligature glyph; pypdf extracts it as U+FB01."""
    from fusion_book.pdf import _squash

    assert _squash("Does metadata help? ... its signi\ufb01cance") == _squash(
        "Does metadata help? ... its significance")
    assert _squash("the classi\ufb01er\u2019s weights") == "theclassifiersweights"
