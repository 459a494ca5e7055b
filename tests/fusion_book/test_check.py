"""The reader-like book check on tiny hand-made pages: good pages pass, each fault is caught."""

from __future__ import annotations

import shutil
import struct
import urllib.request
import zlib
from pathlib import Path

import pytest

from fusion_book import check as book_check
from fusion_book.check import (
    BookCheckError,
    BrowserNotFoundError,
    check_book,
    find_browser,
    list_pages,
    serve_directory,
)
from fusion_utils.paths import project_root

MATHJAX = project_root() / "book" / "_static" / "mathjax"


def _browser_or_skip() -> Path:
    try:
        return find_browser()
    except BrowserNotFoundError as exc:
        pytest.skip(f"headless Chromium is not installed ({exc})")


def _png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG, written by hand so the test needs no imaging library."""
    raw = b"".join(b"\0" + b"\x10\x80\xf0" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _page(body: str, *, mathjax: bool = False, depth: int = 0) -> str:
    up = "../" * depth
    script = (f'<script>window.MathJax = {{"options": {{"processHtmlClass": "math"}}}}</script>'
              f'<script defer src="{up}_static/mathjax/tex-chtml-full.js"></script>'
              if mathjax else "")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>{script}</head>"
            f"<body>{body}</body></html>")


GOOD_BODY = (
    "<h1>Good</h1><p>Inline <span class='math notranslate nohighlight'>\\(a^2 + b^2 = c^2\\)</span>"
    " and a price of $5 and $6.</p>"
    "<div class='math notranslate nohighlight'>\\[P(y=j \\mid \\mathbf{z}) = "
    "\\frac{e^{\\mathbf{z}^T \\mathbf{w}_j}}{\\sum_k e^{\\mathbf{z}^T \\mathbf{w}_k}}\\]</div>"
    "<figure><img src='../_images/fig.png' alt='a figure'><figcaption>Fig. 1</figcaption></figure>"
    "<pre><code>echo $$ \\(not maths in code\\)</code></pre>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HTML tree: one good page and one page per fault."""
    root = tmp_path_factory.mktemp("html")
    shutil.copytree(MATHJAX, root / "_static" / "mathjax")
    (root / "_images").mkdir()
    (root / "_images" / "fig.png").write_bytes(_png())
    pages = {
        "book/good.html": _page(GOOD_BODY, mathjax=True, depth=1),
        "book/js_error.html": _page("<p>ok text</p><script>null.boom();</script>"),
        "book/console_error.html": _page("<p>x</p><script>console.error('bad thing')</script>"),
        "book/missing_image.html": _page("<img src='../_images/nope.png' alt='gone'>"),
        "book/raw_tex.html": _page("<p>Equation: $$E = mc^2$$ and \\(x\\)</p>"),
        "book/no_mathjax.html": _page("<span class='math'>\\(x^2\\)</span>"),
        "book/tex_error.html": _page("<span class='math'>\\(\\undefinedmacro{x}\\)</span>",
                                     mathjax=True, depth=1),
        "book/external.html": _page("<p>hi</p><script src='https://cdn.example.org/lib.js'></script>"),
        "index.html": "<html><head><meta http-equiv='refresh' content='0; url=book/good.html'>"
                      "</head></html>",
    }
    for rel, text in pages.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "_static" / "ignored.html").write_text("asset, not a page")
    return root


def test_png_helper_is_a_real_png() -> None:
    data = _png(7, 5)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", data[16:24]) == (7, 5)


def test_list_pages_skips_asset_folders(site: Path) -> None:
    pages = list_pages(site)
    assert "book/good.html" in pages and "index.html" in pages
    assert not any(p.startswith("_static/") for p in pages)
    assert pages == sorted(pages)


def test_serve_directory_serves_files_on_loopback(site: Path) -> None:
    with serve_directory(site) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "_images/fig.png") as resp:
            assert resp.read() == (site / "_images" / "fig.png").read_bytes()


def test_find_browser_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("FUSION_CHROMIUM", raising=False)
    with pytest.raises(BrowserNotFoundError, match="apt-get install -y chromium"):
        find_browser()


def test_problems_from_events_classifies_network_and_js() -> None:
    base = "http://127.0.0.1:8000/"
    events = [
        {"method": "Network.requestWillBeSent",
         "params": {"requestId": "1", "request": {"url": "https://cdn.example.org/x.js"}}},
        {"method": "Network.requestWillBeSent",
         "params": {"requestId": "2", "request": {"url": base + "a.css"}}},
        {"method": "Network.responseReceived",
         "params": {"response": {"url": base + "a.css", "status": 404}}},
        {"method": "Network.responseReceived",
         "params": {"response": {"url": base + "favicon.ico", "status": 404}}},
        {"method": "Network.loadingFailed",
         "params": {"requestId": "1", "errorText": "net::ERR_NAME_NOT_RESOLVED"}},
        {"method": "Runtime.exceptionThrown",
         "params": {"exceptionDetails": {"text": "Uncaught", "url": base + "p.html",
                                         "lineNumber": 4,
                                         "exception": {"description": "TypeError: x\n at y"}}}},
    ]
    problems = book_check._problems_from_events(events, base)
    assert [(p.kind, p.detail) for p in problems] == [
        ("external-request", "https://cdn.example.org/x.js"),
        ("broken-resource", "HTTP 404 a.css"),
        ("js-error", "TypeError: x (p.html:5)"),
    ]


@pytest.fixture(scope="module")
def report(site: Path) -> book_check.BookReport:
    _browser_or_skip()
    return check_book(site, screenshot_pages=["book/good.html"], raise_on_error=False,
                      timeout=20)


def _kinds(report: book_check.BookReport, page: str) -> set[str]:
    result = next(r for r in report.pages if r.page == page)
    return {p.kind for p in result.problems}


def test_good_page_passes_with_typeset_maths_and_image(report: book_check.BookReport) -> None:
    good = next(r for r in report.pages if r.page == "book/good.html")
    assert good.ok, good.problems
    assert (good.n_math, good.n_images) == (2, 1)


def test_redirect_page_is_followed_not_loaded(report: book_check.BookReport) -> None:
    index = next(r for r in report.pages if r.page == "index.html")
    assert index.ok and index.redirect_to == "book/good.html"


@pytest.mark.parametrize(("page", "kind"), [
    ("book/js_error.html", "js-error"),
    ("book/console_error.html", "console-error"),
    ("book/missing_image.html", "missing-image"),
    ("book/raw_tex.html", "raw-tex"),
    ("book/no_mathjax.html", "unrendered-math"),
    ("book/tex_error.html", "math-error"),
    ("book/external.html", "external-request"),
])
def test_each_fault_fails_its_page(report: book_check.BookReport, page: str, kind: str) -> None:
    assert kind in _kinds(report, page)


def test_missing_image_is_also_a_broken_local_resource(report: book_check.BookReport) -> None:
    result = next(r for r in report.pages if r.page == "book/missing_image.html")
    assert any(p.kind == "broken-resource" and "404" in p.detail for p in result.problems)


def test_report_summary_and_screenshot(report: book_check.BookReport, site: Path) -> None:
    assert not report.ok
    assert {r.page for r in report.failed} == {
        "book/js_error.html", "book/console_error.html", "book/missing_image.html",
        "book/raw_tex.html", "book/no_mathjax.html", "book/tex_error.html", "book/external.html"}
    assert "7 failed" in report.summary()
    (shot,) = report.screenshots
    assert shot == site.parent / "screenshots" / "book__good.png"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and height > 100


def test_check_book_raises_and_cli_exit_codes(site: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _browser_or_skip()
    with pytest.raises(BookCheckError, match="js-error"):
        check_book(site, pages=["book/js_error.html"], screenshot_pages=[], timeout=20)
    assert book_check.main([str(site), "--page", "book/good.html", "--page", "index.html",
                            "--screenshot-dir", str(site.parent / "shots2")]) == 0
    out = capsys.readouterr().out
    assert "2 pages passed, 0 failed" in out
    assert book_check.main([str(site / "nothing-here")]) == 2


def test_missing_page_is_a_clear_error(site: Path) -> None:
    _browser_or_skip()
    with pytest.raises(FileNotFoundError, match="nope.html"):
        check_book(site, pages=["nope.html"])

