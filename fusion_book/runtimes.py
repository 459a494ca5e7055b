"""How long each chapter and each grid configuration took in the build that produced the book.

Nothing here is typed by hand: chapter times are papermill's own record in every executed
notebook (``metadata.papermill.duration``, seconds, and ``metadata.papermill.parameters``), grid
times are the run folders' ``status.json`` (``seconds`` and ``stages``, written by
:mod:`fusion_utils.experiments.runner`), and the machine is described by :func:`machine_info`,
saved by the build as ``book/executed/machine.json`` so that a later ``--skip-execute`` rebuild
still names the machine that ran the chapters.

:func:`write_runtimes_page` writes ``book/executed/runtimes_body.md``, which the committed page
``book/runtimes.md`` (listed in ``_toc.yml``) includes.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "EXERCISES_BODY",
    "MACHINE_FILE",
    "RUNTIMES_BODY",
    "RUNTIMES_PAGE",
    "chapter_times",
    "format_seconds",
    "grid_times",
    "load_machine",
    "machine_info",
    "machine_line",
    "parameters_text",
    "save_machine",
    "write_exercise_table",
    "write_runtimes_page",
]

#: File, in the executed folder, describing the machine that executed the chapters.
MACHINE_FILE = "machine.json"
#: The generated body of the run-time page, in the executed folder.
RUNTIMES_BODY = "runtimes_body.md"
#: The generated table of exercise commands and times, included by ``book/teaching.md``.
EXERCISES_BODY = "exercise_times.md"
#: The committed page that includes it (a Sphinx docname, absolute from the book's root).
RUNTIMES_PAGE = "/book/runtimes"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """This machine: usable cores, CPU model, memory (GiB), GPU names (empty list: none)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    gpus: list[str] = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return {"cores": cores, "cpu": _cpu_model(), "memory_gib": _memory_gib(), "gpus": gpus,
            "python": platform.python_version(), "system": platform.system()}


def save_machine(executed: str | os.PathLike[str]) -> Path:
    """Write :func:`machine_info` to ``<executed>/machine.json`` (the build does, once)."""
    return atomic_write_json(Path(executed) / MACHINE_FILE, machine_info())


def load_machine(executed: str | os.PathLike[str]) -> dict[str, Any]:
    """The machine that executed the chapters (``machine.json``), else this machine."""
    path = Path(executed) / MACHINE_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return machine_info()


def machine_line(machine: dict[str, Any]) -> str:
    """``"2 CPU cores (AMD EPYC ...), 24 GiB, no GPU"`` from a :func:`machine_info` dict."""
    gpus = machine.get("gpus") or []
    mem = machine.get("memory_gib")
    parts = [f"{machine.get('cores', '?')} CPU cores ({machine.get('cpu', '?')})"]
    if mem:
        parts.append(f"{mem:g} GiB memory")
    parts.append(", ".join(gpus) if gpus else "no GPU")
    return ", ".join(parts)


def format_seconds(seconds: float | None) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"1 h 02 min"``; ``"?"`` for a missing value."""
    if seconds is None or pd.isna(seconds):
        return "?"
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def chapter_times(executed: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per executed notebook: ``page``, ``duration`` (s), ``parameters``, ``end_time``.

    Read from papermill's metadata; a notebook without it (not executed by papermill) is left
    out. Sorted by page name, which is the chapters' order.
    """
    import nbformat

    rows = []
    for path in sorted(Path(executed).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        pm = nb.metadata.get("papermill") or {}
        if pm.get("duration") is None:
            continue
        rows.append({"page": path.stem, "duration": float(pm["duration"]),
                     "parameters": dict(pm.get("parameters") or {}),
                     "end_time": pm.get("end_time")})
    return pd.DataFrame(rows, columns=["page", "duration", "parameters", "end_time"])


def grid_times(runs_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per grid run folder: ``config_id``, ``state``, ``seconds``, ``threads``, ``host``
    and one column per stage (notebook) with its seconds; empty when there is no grid."""
    rows = []
    for status_file in sorted(Path(runs_dir).glob("*/status.json")):
        st = json.loads(status_file.read_text(encoding="utf-8"))
        row = {"config_id": st.get("config_id", status_file.parent.name),
               "state": st.get("state"), "seconds": st.get("seconds"),
               "threads": st.get("threads"), "host": st.get("host")}
        row.update({f"stage.{k}": v for k, v in (st.get("stages") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def parameters_text(params: dict[str, Any], default: str = "defaults") -> str:
    """``"`dataset=ptbxl`, `run_dir=runs/book/x`"``: the non-empty parameters, paths inside the
    project shown relative to it (the book does not print the build machine's folders)."""
    from fusion_utils.paths import project_root

    root = str(project_root()).rstrip("/") + "/"
    shown = {k: (v.removeprefix(root) if isinstance(v, str) else v)
             for k, v in params.items() if v not in ("", None)}
    return ", ".join(f"`{k}={v}`" for k, v in shown.items()) or default


def write_runtimes_page(executed: str | os.PathLike[str], runs_dir: str | os.PathLike[str],
                        dest: str | os.PathLike[str] | None = None) -> Path:
    """Write the run-time page's body (MyST markdown, included by ``book/runtimes.md``) from the
    executed notebooks and the grid folders.

    Returns the file's path (default ``<executed>/runtimes_body.md``). Page links are absolute
    (``/book/executed/<page>``), so they resolve from whichever page includes the body.
    """
    executed = Path(executed)
    dest = Path(dest) if dest is not None else executed / RUNTIMES_BODY
    machine = load_machine(executed)
    chapters = chapter_times(executed)
    grid = grid_times(runs_dir)
    out = ["How long each chapter and each configuration of the book grid took in the build that "
           "produced this book, read from papermill's record in each executed notebook "
           "(`metadata.papermill.duration`) and from the grid's run folders (`status.json`); "
           "nothing on this page is typed by hand.", "",
           f"**Machine:** {machine_line(machine)}; Python {machine.get('python', '?')}.", ""]
    out += ["## Chapters", ""]
    if len(chapters):
        rows = [[f"{{doc}}`/book/executed/{r.page}`", format_seconds(r.duration),
                 parameters_text(r.parameters)]
                for r in chapters.itertuples()]
        out += [_table(["page", "run time", "parameters"], rows), "",
                f"Chapters in total: {format_seconds(chapters['duration'].sum())}.", ""]
    else:
        out += ["No executed chapter carries papermill's timing in this build.", ""]
    out += ["## Book grid", ""]
    if len(grid):
        stages = sorted(c for c in grid.columns if c.startswith("stage."))
        rows = [[f"`{r['config_id']}`", str(r["state"]), format_seconds(r["seconds"]),
                 *(format_seconds(r.get(s)) for s in stages),
                 "?" if pd.isna(r.get("threads")) else str(int(r["threads"]))]
                for _, r in grid.iterrows()]
        out += [_table(["configuration", "state", "total", *(s[6:] for s in stages), "threads"],
                       rows), "",
                f"{len(grid)} configurations, {format_seconds(grid['seconds'].sum())} of "
                "configuration time in total (configurations may run side by side, so the wall "
                "time of the grid is shorter). The features, fusion and evaluation chapters of "
                "this book are executed notebooks of two of these configurations.", ""]
    else:
        out += ["No grid run folder was found for this build.", ""]
    return atomic_write_text(dest, "\n".join(out))


def write_exercise_table(executed: str | os.PathLike[str],
                         notebooks: str | os.PathLike[str],
                         dest: str | os.PathLike[str] | None = None) -> Path:
    """Write the teachers' table of exercises (included by ``book/teaching.md``).

    One row per ``fusion-book run`` command printed in a chapter's exercises, with what it needs
    (:data:`fusion_book.prerequisites.NEEDS`) and an *estimate* of its run time: the longest
    page of that chapter in this build (papermill's record; an exercise changes parameters, so
    it can take longer or shorter). Returns the file's path (default
    ``<executed>/exercise_times.md``).
    """
    from fusion_book.commands import exercise_commands
    from fusion_book.prerequisites import NEEDS, source_notebook

    executed = Path(executed)
    dest = Path(dest) if dest is not None else executed / EXERCISES_BODY
    chapters = chapter_times(executed)
    longest: dict[str, float] = {}
    for r in chapters.itertuples():
        try:
            stem = source_notebook(r.page)
        except KeyError:
            continue
        longest[stem] = max(longest.get(stem, 0.0), r.duration)
    rows = []
    for nb in sorted(Path(notebooks).glob("[0-9]*.py")):
        for cmd in exercise_commands(nb):
            if cmd.split()[2] != nb.stem:  # a command to run first, not an exercise
                continue
            earlier = NEEDS.get(nb.stem, ("?", "?"))[0]
            rows.append([f"{nb.stem}", f"`{cmd}`", earlier, format_seconds(longest.get(nb.stem))])
    machine = load_machine(executed)
    text = [f"Estimated times are the chapter's longest page in the build of this book, on "
            f"{machine_line(machine)} (see {{doc}}`{RUNTIMES_PAGE}`).", "",
            _table(["chapter", "command", "needs", "estimate"], rows), ""]
    return atomic_write_text(dest, "\n".join(text))
