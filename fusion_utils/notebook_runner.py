"""Execute the book's jupytext notebooks with papermill.

papermill cannot read ``py:percent`` files, so the notebook is converted in memory with jupytext
and handed to ``papermill.execute_notebook`` as a notebook node. The book build and the grid
runner both go through :func:`execute_notebook`, which checks the parameters' names and types
against the ``parameters`` cell (:func:`check_parameter_types`) before a kernel starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fusion_utils.errors import NotebookParameterError
from fusion_utils.io import atomic_path
from fusion_utils.paths import project_root

__all__ = [
    "NotebookExecutionError",
    "NotebookParameterError",
    "check_parameter_types",
    "execute_notebook",
    "notebook_parameters",
    "notebook_path",
]

# Annotation in the parameters cell -> accepted Python types (papermill's inferred type names).
# ``float`` accepts integers; ``str`` accepts paths (passed on as text); ``bool`` is never taken
# for an ``int`` or ``float``. Other annotations (``Any``, none at all) are not checked.
_ACCEPTED_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str, os.PathLike),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


class NotebookExecutionError(RuntimeError):
    """A notebook failed; the message names the notebook, its parameters and the failing cell."""


def notebook_path(name: str | os.PathLike[str]) -> Path:
    """Resolve a notebook by path or by stem (``"01_data_preparation"`` ->
    ``notebooks/01_...py``)."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    candidate = project_root() / "notebooks" / (path.stem + ".py")
    if candidate.is_file():
        return candidate
    available = sorted(p.stem for p in (project_root() / "notebooks").glob("*.py"))
    raise FileNotFoundError(f"no notebook {str(name)!r}; available: {', '.join(available)}")


def notebook_parameters(name: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell, as papermill infers them.

    Returns a mapping ``name -> {"type": ..., "default": ..., "help": ...}``.
    """
    from papermill.inspection import _infer_parameters

    nb = _read(notebook_path(name))
    return {p.name: {"type": p.inferred_type_name, "default": p.default, "help": p.help}
            for p in _infer_parameters(nb)}


def _numpy_scalar(value: Any) -> Any:
    """NumPy scalars as the Python value they stand for (others unchanged)."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def check_parameter_types(declared: Mapping[str, Mapping[str, Any]],
                          params: Mapping[str, Any], notebook: str = "notebook") -> dict[str, Any]:
    """Check names and types of ``params`` against a notebook's parameters cell.

    Parameters
    ----------
    declared : mapping
        :func:`notebook_parameters` of the notebook.
    params : mapping
        The values to inject.
    notebook : str
        Name used in the message.

    Returns
    -------
    dict
        The parameters as papermill should inject them (paths as text, NumPy scalars as
        Python numbers).

    Raises
    ------
    NotebookParameterError
        An unknown name, or a value whose type does not match the annotation; the message
        names each such parameter, the expected type, the default and the value given.
        ``None`` is accepted for any parameter (chapters treat it as "not given").
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}; "
                        f"declared: {', '.join(sorted(declared))}")
    for name, raw in params.items():
        if name not in declared:
            continue
        value = _numpy_scalar(raw)
        type_name = str(declared[name].get("type") or "")
        if type_name.startswith("Optional[") and type_name.endswith("]"):
            type_name = type_name[len("Optional["):-1]
        accepted = _ACCEPTED_TYPES.get(type_name)
        if value is not None and accepted is not None:
            is_bool = isinstance(value, bool)
            if not isinstance(value, accepted) or (is_bool and type_name != "bool"):
                problems.append(
                    f"parameter {name!r} expects {type_name} (default "
                    f"{declared[name].get('default')}), got {type(raw).__name__} {raw!r}")
                continue
        out[name] = os.fspath(value) if isinstance(value, os.PathLike) else value
    if problems:
        raise NotebookParameterError(f"{notebook}: " + "; ".join(problems)
                                     + " (nothing was run)")
    return out


def _read(path: Path) -> Any:
    """Read a jupytext notebook as papermill expects it (every cell has a ``tags`` list)."""
    import jupytext

    nb = jupytext.read(path)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    return nb


# A kernel that dies before answering kernel_info never ran a cell; it is started again.
_KERNEL_START_FAILED = "Kernel died before replying to kernel_info"
_KERNEL_START_ATTEMPTS = 3


def execute_notebook(
    name: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: int | None = 3600,
    log_output: bool = False,
    progress_bar: bool = False,
) -> Path:
    """Execute a jupytext notebook with papermill and write the executed ``.ipynb`` atomically.

    Parameters
    ----------
    name : path-like
        The ``.py`` notebook, or its stem under ``notebooks/``.
    output : path-like
        Destination ``.ipynb``. On failure the partially executed notebook is kept beside it as
        ``<output>.failed.ipynb`` for inspection and ``output`` itself is left untouched.
    parameters : mapping, optional
        Values injected after the ``parameters`` cell. Unknown names and values whose type does
        not match the cell's annotation raise :class:`~fusion_utils.errors.NotebookParameterError`
        (a ``TypeError`` and a ``ValueError``) before the kernel starts: see
        :func:`check_parameter_types`.
    cwd : path-like, optional
        Working folder of the kernel (default: the project root).
    timeout : int, optional
        Per-cell timeout in seconds.
    log_output : bool
        Stream cell output to the log.
    progress_bar : bool
        Show papermill's per-cell progress bar (``fusion-book run`` does).
    """
    import papermill

    src = notebook_path(name)
    params = check_parameter_types(notebook_parameters(src), dict(parameters or {}), src.name)
    nb = _read(src)
    out = Path(output)
    failed = out.with_suffix(".failed.ipynb")
    env_root = os.environ.setdefault("FUSION_PROJECT_ROOT", str(project_root()))
    # A non-interactive MPLBACKEND (e.g. Agg, set for tests) would reach the kernel and keep
    # figures out of the executed notebook: the kernel must use its inline backend.
    saved_backend = os.environ.pop("MPLBACKEND", None)
    with atomic_path(out, suffix=".ipynb") as tmp:
        try:
            for attempt in range(_KERNEL_START_ATTEMPTS):
                try:
                    papermill.execute_notebook(
                        nb, str(tmp), parameters=params, kernel_name="python3",
                        cwd=str(cwd or env_root), execution_timeout=timeout,
                        log_output=log_output, progress_bar=progress_bar,
                    )
                    break
                except RuntimeError as exc:
                    # Two kernels started at once can draw the same free port (jupyter_client
                    # picks ports before binding them): the kernel dies before any cell ran,
                    # so starting it again is safe.
                    if _KERNEL_START_FAILED not in str(exc) or (
                            attempt + 1 == _KERNEL_START_ATTEMPTS):
                        raise
        except papermill.PapermillExecutionError as exc:
            if tmp.exists():
                os.replace(tmp, failed)
            raise NotebookExecutionError(
                f"{src.name} failed with parameters {params}: {exc.ename}: {exc.evalue} "
                f"(cell {exc.exec_count}); executed notebook kept at {failed}"
            ) from exc
        finally:
            if saved_backend is not None:
                os.environ["MPLBACKEND"] = saved_backend
    if failed.exists():
        failed.unlink()
    return out
