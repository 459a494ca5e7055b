"""Sphinx extension: drop duplicated ``<script>`` entries from each page.

Sphinx 7.4 adds an inline script registered after ``Builder.init()`` twice (once with filename
``None``, once with ``''``; fixed upstream in Sphinx 8). sphinx-thebe registers
``const THEBE_JS_URL = ...`` that way, so every page of a Jupyter Book 1 build throws
``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the reader's browser
(found by ``python -m fusion_book.check``). This keeps the first of each identical script.

Enabled in ``_config.yml``::

    sphinx:
      local_extensions:
        book_assets: book/_ext
"""

from __future__ import annotations

from typing import Any

__all__ = ["dedupe_scripts", "setup"]


def _key(js: Any) -> tuple[Any, ...]:
    filename = getattr(js, "filename", js) or ""
    attrs = getattr(js, "attributes", {}) or {}
    return (filename, getattr(js, "priority", 500), tuple(sorted(attrs.items())))


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any],
                   doctree: Any) -> None:
    """``html-page-context`` handler: keep the first of identical script entries."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for js in scripts:
        key = _key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    """Register the handler late, after the extensions that add page scripts."""
    app.connect("html-page-context", dedupe_scripts, priority=990)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
