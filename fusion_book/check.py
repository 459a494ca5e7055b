"""Check the built book the way a reader sees it: every page in headless Chromium, offline.

``python -m fusion_book.check _build/html`` serves the HTML folder on ``127.0.0.1`` (a
:class:`http.server.ThreadingHTTPServer` in a thread), opens every page in one headless Debian
``chromium`` driven over the Chrome DevTools Protocol (``--remote-debugging-pipe``: JSON messages
on file descriptors 3 and 4, so no extra Python package is needed), and fails when a page has

- a JavaScript error (an uncaught exception, ``console.error``, or a browser log error),
- a missing image (an ``<img>`` that did not load: ``naturalWidth == 0``) or a local file that
  answered with an HTTP error,
- an unrendered equation (a Sphinx ``.math`` element without MathJax's ``<mjx-container>``, raw
  TeX such as ``$$``, ``\\(`` or ``\\begin{`` left in the text, or a MathJax error box),
- a request to any host other than ``127.0.0.1`` (every other host name is made unresolvable with
  ``--host-resolver-rules``, so the page is checked exactly as an offline reader sees it).

Screenshots of the intro and one chapter are kept (default ``_build/screenshots/``).

Why not Playwright or Selenium: both download or expect their own browser build; Debian's
``chromium`` package plus the DevTools pipe needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fusion_utils.io import atomic_write_bytes

__all__ = [
    "BookCheckError",
    "BookReport",
    "BrowserNotFoundError",
    "PageResult",
    "Problem",
    "broken_downloads",
    "check_book",
    "find_browser",
    "list_pages",
    "main",
    "serve_directory",
]

#: Debian package that provides the browser (for error messages and CI).
APT_HINT = "apt-get install -y chromium"

#: Browser executables tried in order (``FUSION_CHROMIUM`` wins).
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

#: Flags for a quiet, offline, sandbox-free headless browser (root in containers needs
#: ``--no-sandbox``).
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    # Every host but 127.0.0.1 is unresolvable: the page is checked as an offline reader sees it.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
)

#: Folders of the HTML output that hold assets, not pages.
ASSET_DIRS = ("_static", "_sources", "_images", "_downloads", "_sphinx_design_static")

# Download links: Sphinx's {download} role (``_downloads/<hash>/file``) and links to notebooks.
_DOWNLOAD_RE = re.compile(r'''href=["']([^"'#?]*(?:_downloads/[^"'#?]+|\.ipynb|\.py))["']''')

_REDIRECT_RE = re.compile(r"""<meta[^>]+http-equiv=["']?refresh["']?[^>]*url=([^"'>\s]+)""",
                          re.IGNORECASE)

# Runs in the page once it has loaded; resolves to a JSON-able summary of what a reader sees.
_PAGE_PROBE = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = {mathjax: false, mathjax_error: null, math_total: 0, math_unrendered: [],
               math_errors: [], raw_tex: [], broken_images: [], n_images: 0};
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    out.mathjax = true;
    try {
      await Promise.race([mj.startup.promise, sleep(%(math_timeout_ms)d).then(() => {
        throw new Error('MathJax did not finish typesetting in %(math_timeout_ms)d ms'); })]);
    } catch (e) { out.mathjax_error = String(e); }
  }
  const imgs = Array.from(document.images);
  out.n_images = imgs.length;
  for (const img of imgs) { if (img.loading === 'lazy') img.loading = 'eager'; }
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener('load', r, {once: true});
    img.addEventListener('error', r, {once: true});
    setTimeout(r, %(image_timeout_ms)d);
  })));
  for (const img of imgs) {
    if (!(img.complete && img.naturalWidth > 0)) {
      out.broken_images.push(
        img.getAttribute('src') || img.currentSrc || img.outerHTML.slice(0, 120));
    }
  }
  const snippet = (el) => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 80);
  const maths = Array.from(document.querySelectorAll('.math'));
  out.math_total = maths.length;
  for (const el of maths) {
    if (!el.querySelector('mjx-container')) out.math_unrendered.push(snippet(el));
  }
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error]')) {
    out.math_errors.push(el.getAttribute('data-mjx-error') || snippet(el));
  }
  // MathJax's `noundefined` extension shows an unknown macro as red text instead of an error;
  // its assistive MathML keeps the macro's name.
  for (const el of document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    if ((el.textContent || '').startsWith('\\')) {
      out.math_errors.push('undefined macro ' + el.textContent);
    }
  }
  const skip = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEXTAREA', 'PRE', 'CODE', 'KBD', 'SAMP',
                        'MJX-CONTAINER', 'TEMPLATE']);
  const rawTex = /\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\$\\[A-Za-z]+/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName) || el.classList.contains('highlight')) {
          return NodeFilter.FILTER_REJECT;
        }
      }
      return rawTex.test(node.nodeValue) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    }});
  for (let n = walker.nextNode(); n && out.raw_tex.length < 10; n = walker.nextNode()) {
    const text = n.nodeValue; const i = text.search(rawTex);
    out.raw_tex.push(text.slice(Math.max(0, i - 30), i + 50).replace(/\s+/g, ' '));
  }
  await sleep(%(settle_ms)d);
  return out;
})()
"""


class BrowserNotFoundError(FileNotFoundError):
    """No Chromium/Chrome executable was found."""


@dataclass(frozen=True)
class Problem:
    """One thing a reader would see go wrong on a page.

    Attributes
    ----------
    kind : str
        ``js-error``, ``console-error``, ``missing-image``, ``broken-resource``,
        ``unrendered-math``, ``raw-tex``, ``math-error``, ``external-request``, ``load-failed``,
        ``broken-download``.
    detail : str
        What and where (a URL, a TeX snippet, an error message).
    """

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class PageResult:
    """The outcome for one page (``page`` is relative to the HTML folder)."""

    page: str
    problems: list[Problem] = field(default_factory=list)
    n_images: int = 0
    n_math: int = 0
    seconds: float = 0.0
    redirect_to: str | None = None

    @property
    def ok(self) -> bool:
        """True when the page has no problem."""
        return not self.problems


@dataclass
class BookReport:
    """All pages' results and the screenshots written."""

    html_dir: Path
    pages: list[PageResult]
    screenshots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every page passed."""
        return all(p.ok for p in self.pages)

    @property
    def failed(self) -> list[PageResult]:
        """The pages with at least one problem."""
        return [p for p in self.pages if not p.ok]

    def summary(self) -> str:
        """A human-readable report: one line per page, problems indented below."""
        lines = []
        for p in self.pages:
            if p.redirect_to is not None:
                lines.append(f"  ok   {p.page} (redirect to {p.redirect_to})")
                continue
            status = "ok  " if p.ok else "FAIL"
            lines.append(f"  {status} {p.page} ({p.n_images} images, {p.n_math} equations, "
                         f"{p.seconds:.1f} s)")
            lines.extend(f"         {prob}" for prob in p.problems)
        n_bad = len(self.failed)
        lines.append(f"{len(self.pages) - n_bad} pages passed, {n_bad} failed"
                     + (f"; screenshots: {', '.join(str(s) for s in self.screenshots)}"
                        if self.screenshots else ""))
        return "\n".join(lines)


class BookCheckError(RuntimeError):
    """Raised by :func:`check_book` when a page fails; ``report`` holds the details."""

    def __init__(self, report: BookReport) -> None:
        self.report = report
        super().__init__("the rendered book has problems:\n" + report.summary())


def find_browser(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the Chromium executable: ``explicit``, ``$FUSION_CHROMIUM``, or one on ``PATH``.

    Raises
    ------
    BrowserNotFoundError
        With the install command to run.
    """
    candidates = [str(explicit)] if explicit else []
    if os.environ.get("FUSION_CHROMIUM"):
        candidates.append(os.environ["FUSION_CHROMIUM"])
    candidates.extend(BROWSER_NAMES)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BrowserNotFoundError(
        f"no Chromium found (tried {', '.join(candidates)}): install Debian's package with "
        f"`{APT_HINT}`, or set FUSION_CHROMIUM to the browser executable")


def list_pages(html_dir: str | os.PathLike[str]) -> list[str]:
    """HTML pages under ``html_dir`` (relative POSIX paths, sorted), asset folders excluded."""
    root = Path(html_dir)
    pages = []
    for path in root.rglob("*.html"):
        rel = path.relative_to(root)
        if rel.parts[0] in ASSET_DIRS:
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: str | os.PathLike[str]) -> Iterator[str]:
    """Serve ``directory`` on ``127.0.0.1`` (a free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="book-check-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _DevTools:
    """A headless browser driven over ``--remote-debugging-pipe`` (one tab, flat session)."""

    def __init__(self, browser: Path, *, width: int = 1280, height: int = 1000) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="book-check-")
        # Chromium reads commands from fd 3 and writes replies to fd 4. Keep the child's ends
        # at 10 or above so that dup2 onto 3 and 4 cannot clobber one with the other.
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)
        args = [str(browser), *BROWSER_FLAGS, f"--user-data-dir={self._tmp.name}",
                f"--window-size={width},{height}", "about:blank"]
        # A tiny Python trampoline puts the pipe ends on fds 3 and 4, then becomes the browser.
        trampoline = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); "
                      "os.dup2(a, 3); os.dup2(b, 4); os.close(a); os.close(b); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(a), str(b), *args],
            pass_fds=(a, b), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        os.close(a)
        os.close(b)
        self._w = os.fdopen(to_child_w, "wb", buffering=0)
        self._r = os.fdopen(from_child_r, "rb", buffering=0)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self._stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.session: str | None = None
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except Exception:
            self.close()
            raise

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))
            del self._stderr[:-50]

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._r.read(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._events.put(msg)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and wait for its reply; raise ``RuntimeError`` on a protocol error."""
        self._next_id += 1
        msg_id = self._next_id
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        self._w.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self._replies:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    why = "the browser exited" if self._closed else f"no reply in {timeout:.0f} s"
                    raise RuntimeError(f"DevTools {method}: {why}; browser log tail:\n"
                                       + "".join(self._stderr[-10:]))
                self._cond.wait(remaining)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
        return reply.get("result", {})

    def drain_events(self) -> list[dict[str, Any]]:
        """Return and forget the events received so far."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait_event(self, method: str, timeout: float) -> tuple[bool, list[dict[str, Any]]]:
        """Collect events until ``method`` arrives (True) or ``timeout`` passes (False)."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False, seen
            try:
                ev = self._events.get(timeout=remaining)
            except queue.Empty:
                return False, seen
            seen.append(ev)
            if ev.get("method") == method:
                return True, seen

    def close(self) -> None:
        """Close the browser and remove its profile folder."""
        with contextlib.suppress(Exception):
            if not self._closed:
                self._w.write(json.dumps({"id": 10**9, "method": "Browser.close"}).encode() + b"\0")
        with contextlib.suppress(Exception):
            self._w.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._r.close()
        self._tmp.cleanup()

    def __enter__(self) -> _DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript", "chrome", "devtools"):
        return True
    return parts.hostname == "127.0.0.1"


def _problems_from_events(events: list[dict[str, Any]], base: str) -> list[Problem]:
    problems: list[Problem] = []
    urls: dict[str, str] = {}
    external: set[str] = set()

    def short(url: str) -> str:
        return url[len(base):] if url.startswith(base) else url

    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not _is_local(url) and url not in external:
                external.add(url)
                problems.append(Problem("external-request", url))
        elif method == "Network.responseReceived":
            resp = params["response"]
            url = resp["url"]
            # Chromium asks for /favicon.ico by itself; Sphinx ships none unless configured.
            if (_is_local(url) and resp.get("status", 200) >= 400
                    and urlsplit(url).path != "/favicon.ico"):
                problems.append(Problem("broken-resource", f"HTTP {resp['status']} {short(url)}"))
        elif method == "Network.loadingFailed":
            url = urls.get(params["requestId"], "?")
            if url not in external and not params.get("canceled"):
                problems.append(Problem("broken-resource",
                                        f"{params.get('errorText', 'failed')} {short(url)}"))
        elif method == "Runtime.exceptionThrown":
            det = params["exceptionDetails"]
            text = det.get("exception", {}).get("description") or det.get("text", "")
            where = (f" ({short(det['url'])}:{det.get('lineNumber', 0) + 1})"
                     if det.get("url") else "")
            problems.append(Problem("js-error", text.splitlines()[0] + where if text else where))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            problems.append(Problem("console-error", text[:300]))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            # Network errors are reported above with their URL; here the rest (security, ...).
            if (entry.get("level") == "error"
                    and entry.get("source") not in ("network", "javascript")):
                problems.append(
                    Problem("console-error", f"[{entry.get('source')}] {entry['text']}"))
    return problems


def _check_page(tools: _DevTools, base: str, page: str, timeout: float) -> PageResult:
    result = PageResult(page)
    t0 = time.perf_counter()
    tools.drain_events()
    url = base + page
    nav = tools.call("Page.navigate", {"url": url}, timeout=timeout)
    if nav.get("errorText"):
        result.problems.append(Problem("load-failed", f"{nav['errorText']} {page}"))
        result.seconds = time.perf_counter() - t0
        return result
    loaded, events = tools.wait_event("Page.loadEventFired", timeout)
    if not loaded:
        result.problems.append(Problem("load-failed", f"no load event within {timeout:.0f} s"))
    probe = _PAGE_PROBE % {"math_timeout_ms": int(timeout * 1000 * 0.6),
                           "image_timeout_ms": int(timeout * 1000 * 0.3), "settle_ms": 150}
    reply = tools.call("Runtime.evaluate", {"expression": probe, "awaitPromise": True,
                                            "returnByValue": True}, timeout=timeout + 5)
    if "exceptionDetails" in reply:
        result.problems.append(Problem("js-error", "page probe failed: "
                                       + str(reply["exceptionDetails"].get("text"))))
        seen: dict[str, Any] = {}
    else:
        seen = reply["result"]["value"]
    events += tools.drain_events()
    result.problems.extend(_problems_from_events(events, base))
    if seen:
        result.n_images, result.n_math = seen["n_images"], seen["math_total"]
        result.problems.extend(Problem("missing-image", src) for src in seen["broken_images"])
        if seen["math_unrendered"]:
            why = ("MathJax did not load" if not seen["mathjax"]
                   else seen["mathjax_error"] or "not typeset by MathJax")
            result.problems.extend(Problem("unrendered-math", f"{why}: {s}")
                                   for s in seen["math_unrendered"][:10])
        elif seen["mathjax_error"]:
            result.problems.append(Problem("unrendered-math", seen["mathjax_error"]))
        result.problems.extend(Problem("math-error", s) for s in seen["math_errors"])
        result.problems.extend(Problem("raw-tex", repr(s)) for s in seen["raw_tex"])
    result.seconds = time.perf_counter() - t0
    return result


def _screenshot(tools: _DevTools, path: Path, max_height: int = 6000) -> Path:
    metrics = tools.call("Page.getLayoutMetrics")
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height),
            "scale": 1}
    shot = tools.call("Page.captureScreenshot",
                      {"format": "png", "clip": clip, "captureBeyondViewport": True}, timeout=60)
    return atomic_write_bytes(path, base64.b64decode(shot["data"]))


def _redirect_target(html_dir: Path, page: str) -> str | None:
    text = (html_dir / page).read_text("utf-8", errors="replace")[:4000]
    m = _REDIRECT_RE.search(text)
    return m.group(1) if m else None


def broken_downloads(html_dir: str | os.PathLike[str], page: str) -> list[Problem]:
    """Download links of ``page`` (``.ipynb``, ``.py``, ``_downloads/``) whose file is missing.

    Read from the page's HTML rather than clicked: a download does not load in the page, so the
    browser would not report it.
    """
    root = Path(html_dir)
    html = (root / page).read_text(encoding="utf-8", errors="replace")
    problems = []
    for href in sorted(set(_DOWNLOAD_RE.findall(html))):
        if urlsplit(href).scheme or urlsplit(href).netloc:  # another site: not ours to check
            continue
        if not ((root / page).parent / href).resolve().is_file():
            problems.append(Problem("broken-download", href))
    return problems


def _default_screenshot_pages(html_dir: Path, pages: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    intro = next((p for p in pages if Path(p).stem == "intro"), None)
    if intro is None and "index.html" in pages:
        target = _redirect_target(html_dir, "index.html")
        intro = target if target in pages else "index.html"
    if intro:
        chosen.append(intro)
    chapters = [p for p in pages if p not in chosen and p not in ("index.html", "genindex.html",
                                                                     "search.html")]
    executed = [p for p in chapters if "/executed/" in f"/{p}"]
    for p in executed + chapters:
        # a figure of the chapter itself (Sphinx copies them to _images/), not a theme icon
        if "_images/" in (html_dir / p).read_text("utf-8", errors="replace"):
            chosen.append(p)
            break
    else:
        if chapters:
            chosen.append(chapters[0])
    return chosen


def check_book(
    html_dir: str | os.PathLike[str],
    *,
    pages: Sequence[str] | None = None,
    screenshot_pages: Sequence[str] | None = None,
    screenshot_dir: str | os.PathLike[str] | None = None,
    browser: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    raise_on_error: bool = True,
    verbose: bool = False,
) -> BookReport:
    """Load every page of a built book in headless Chromium and report what a reader would see.

    Parameters
    ----------
    html_dir : path-like
        The HTML output (``_build/html``).
    pages : sequence of str, optional
        Pages to check, relative to ``html_dir``; default every page (:func:`list_pages`).
    screenshot_pages : sequence of str, optional
        Pages to photograph; default the intro and the first chapter with an image.
        Pass ``[]`` for none.
    screenshot_dir : path-like, optional
        Where the PNGs go; default ``<html_dir>/../screenshots`` (``_build/screenshots``).
    browser : path-like, optional
        Chromium executable; default :func:`find_browser`.
    timeout : float
        Seconds allowed per page (load, typesetting and images).
    raise_on_error : bool
        Raise :class:`BookCheckError` when a page fails (default); otherwise just return.
    verbose : bool
        Print one line per page as it is checked.

    Returns
    -------
    BookReport
    """
    root = Path(html_dir).resolve()
    if not (root / "index.html").is_file() and not list_pages(root):
        raise FileNotFoundError(f"{root} holds no HTML pages: build the book first (`make book`)")
    exe = find_browser(browser)
    todo = list(pages) if pages is not None else list_pages(root)
    missing = [p for p in todo if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"pages not found under {root}: {', '.join(missing)}")
    shots = (list(screenshot_pages) if screenshot_pages is not None
             else _default_screenshot_pages(root, todo))
    shot_dir = Path(screenshot_dir) if screenshot_dir else root.parent / "screenshots"
    report = BookReport(root, [])
    with serve_directory(root) as base, _DevTools(exe) as tools:
        for page in todo:
            target = _redirect_target(root, page)
            if target is not None:
                res = PageResult(page, redirect_to=target)
                dest = (root / page).parent / target.split("#")[0]
                if not dest.is_file():
                    res.problems.append(Problem("load-failed", f"redirect to missing {target}"))
            else:
                res = _check_page(tools, base, page, timeout)
                res.problems.extend(broken_downloads(root, page))
                if page in shots:
                    name = page.removesuffix(".html").replace("/", "__") + ".png"
                    report.screenshots.append(_screenshot(tools, shot_dir / name))
            report.pages.append(res)
            if verbose:
                print(f"{'ok  ' if res.ok else 'FAIL'} {page} ({res.seconds:.1f} s)", flush=True)
    if raise_on_error and not report.ok:
        raise BookCheckError(report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fusion_book.check _build/html [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fusion_book.check",
        description="Load every page of the built book in headless Chromium, offline, and fail "
                    "on JavaScript errors, missing images, unrendered equations or requests to "
                    "other hosts than 127.0.0.1.")
    parser.add_argument("html_dir", nargs="?", default="_build/html",
                        help="the built HTML folder (default: _build/html)")
    parser.add_argument("--page", action="append", dest="pages", metavar="PAGE",
                        help="check only this page (relative to html_dir); repeatable")
    parser.add_argument("--screenshot", action="append", dest="shots", metavar="PAGE",
                        help="photograph this page (default: the intro and one chapter)")
    parser.add_argument("--screenshot-dir", default=None,
                        help="folder for the PNGs (default: <html_dir>/../screenshots)")
    parser.add_argument("--browser", default=None, help="Chromium executable")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page")
    args = parser.parse_args(argv)
    try:
        report = check_book(args.html_dir, pages=args.pages, screenshot_pages=args.shots,
                            screenshot_dir=args.screenshot_dir, browser=args.browser,
                            timeout=args.timeout, raise_on_error=False, verbose=False)
    except (BrowserNotFoundError, FileNotFoundError) as exc:
        print(f"book_check: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
