"""Where things live: project root, demo cohort, caches, runs and the shared real data.

Every folder here is created on demand by the code that writes into it, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATASETS",
    "cache_dir",
    "check_dataset",
    "default_data_dir",
    "executed_dir",
    "project_root",
    "require_data_dir",
    "resolve_data_dir",
    "runs_dir",
    "shared_data_dir",
]

DATASETS: tuple[str, ...] = ("ptbxl", "ham10000")


def check_dataset(name: str) -> str:
    """Return ``name`` normalised, or raise a ``ValueError`` listing the valid names.

    Parameters
    ----------
    name : str
        A dataset name such as ``"ptbxl"`` or ``"HAM10000"`` (case and ``-``/``_`` ignored).
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return key


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Return the project root.

    ``FUSION_PROJECT_ROOT`` wins; otherwise the nearest parent of ``start`` (default: the current
    directory) that holds ``_toc.yml`` and ``pyproject.toml``; otherwise the repository that holds
    this package (editable installs); otherwise the current directory.
    """
    env = os.environ.get("FUSION_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "_toc.yml").is_file():
        return package_parent
    return here


def default_data_dir(dataset: str) -> Path:
    """Folder of the embedded demo cohort for ``dataset`` (``<root>/data/demo/<dataset>``)."""
    return project_root() / "data" / "demo" / check_dataset(dataset)


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """Resolve a notebook's ``data_dir`` parameter: empty means the demo cohort.

    Relative paths are taken from the project root, so notebooks behave the same whatever
    folder papermill starts them in.
    """
    if data_dir is None or str(data_dir).strip() == "":
        return default_data_dir(dataset)
    path = Path(data_dir).expanduser()
    if not path.is_absolute():
        path = project_root() / path
    return path.resolve()


def require_data_dir(dataset: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """:func:`resolve_data_dir`, raising ``FileNotFoundError`` with a hint if the folder is absent.

    The hint says how to generate the demo cohort when the default folder is missing, and to
    check the ``data_dir`` parameter otherwise.
    """
    folder = resolve_data_dir(dataset, data_dir)
    if not folder.is_dir():
        hint = ("generate the demo cohort first: `make demo` or "
                "`python -m fusion_utils.data.demo data/demo`"
                if folder == default_data_dir(dataset) else "check the data_dir parameter")
        raise FileNotFoundError(f"{check_dataset(dataset)} folder not found: {folder}; {hint}")
    return folder


def cache_dir(kind: str = "") -> Path:
    """Cache folder (``FUSION_CACHE_DIR`` or ``<root>/cache``), optionally a named sub-folder."""
    base = Path(os.environ.get("FUSION_CACHE_DIR") or project_root() / "cache")
    return base / kind if kind else base


def runs_dir(grid: str = "") -> Path:
    """Folder of grid runs (``<root>/runs``), optionally one grid's sub-folder."""
    base = project_root() / "runs"
    return base / grid if grid else base


def executed_dir() -> Path:
    """Folder of executed notebooks that the book renders (``<root>/book/executed``)."""
    return project_root() / "book" / "executed"


def shared_data_dir() -> Path:
    """Folder of the real PTB-XL/HAM10000 samples.

    ``FUSION_SHARED_DATA`` when set, else ``<root>/../shared/data``.
    """
    env = os.environ.get("FUSION_SHARED_DATA")
    if env:
        return Path(env).resolve()
    return (project_root().parent / "shared" / "data").resolve()
