"""Build settings that are not in ``_config.yml``: the repository behind the launch buttons.

``_config.yml`` carries no repository address, so by default the book has no Binder/Colab
launch buttons (a button needs a repository to open the notebook from). Set
``FUSION_REPOSITORY_URL`` (for example ``https://github.com/<user>/<repo>``; optionally
``FUSION_REPOSITORY_BRANCH``, default ``main``) and :func:`write_book_config` writes a copy of
``_config.yml`` with ``repository.url``/``branch`` and the Binder and Colab addresses filled in,
which the build passes to ``jupyter-book build --config``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from fusion_utils.io import atomic_write_text

__all__ = ["LAUNCH_BUTTONS", "repository_settings", "write_book_config"]

#: Launch services switched on when a repository is set.
LAUNCH_BUTTONS = {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org",
                  "colab_url": "https://colab.research.google.com"}

_URL_RE = re.compile(r"^https://[^/\s]+/[^/\s]+/[^/\s]+?/?$")


def repository_settings(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """``{"url": ..., "branch": ...}`` from ``FUSION_REPOSITORY_URL``/``_BRANCH``, or ``None``.

    Raises
    ------
    ValueError
        When the URL is not ``https://host/owner/repo`` or still holds a placeholder.
    """
    env = os.environ if environ is None else environ
    url = env.get("FUSION_REPOSITORY_URL", "").strip()
    if not url:
        return None
    if not _URL_RE.match(url) or "<" in url or "YOUR-" in url.upper():
        raise ValueError(f"FUSION_REPOSITORY_URL={url!r} is not a repository address of the form "
                         "https://github.com/<owner>/<repo>")
    return {"url": url.rstrip("/"), "branch": env.get("FUSION_REPOSITORY_BRANCH", "main").strip()
            or "main"}


def write_book_config(root: str | os.PathLike[str], dest: str | os.PathLike[str],
                      environ: dict[str, str] | None = None) -> Path | None:
    """Write ``_config.yml`` with the repository and launch buttons to ``dest``; ``None`` (and
    nothing written) when no repository is set."""
    repo = repository_settings(environ)
    if repo is None:
        return None
    config: dict[str, Any] = yaml.safe_load((Path(root) / "_config.yml").read_text("utf-8"))
    config["repository"] = {**(config.get("repository") or {}), **repo}
    config["launch_buttons"] = {**(config.get("launch_buttons") or {}), **LAUNCH_BUTTONS}
    return atomic_write_text(dest, yaml.safe_dump(config, sort_keys=False))
