"""``fusion-book``: list the chapters, show a chapter's parameters, run a chapter.

::

    fusion-book list
    fusion-book params 04_fusion
    fusion-book run 04_fusion out.ipynb -p encoding standardised -p l2 0.001

``run`` follows papermill's command-line conventions: ``-p NAME VALUE`` (the value is read as
``True``/``False``/``None``/an integer/a float/else a string, exactly as ``papermill -p`` does),
``-r NAME VALUE`` (a raw string), ``-y YAML`` and ``-f FILE.yaml`` (YAML mappings). Later
options win, in papermill's order: files, YAML strings, raw values, then ``-p``. The chapter is
executed by :func:`fusion_utils.notebook_runner.execute_notebook` after every parameter has been
checked against the chapter's ``parameters`` cell (name and type), so a typo fails before any
kernel starts. A failing cell exits with status 1 and a message naming the cell; the partially
executed notebook is kept beside the output.

The equivalent raw pipe, for people who prefer the tools themselves::

    jupytext --to ipynb -o - notebooks/04_fusion.py \\
        | papermill - out.ipynb -k python3 -p encoding standardised
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "chapter_title",
    "check_parameters",
    "list_chapters",
    "main",
    "parse_parameters",
    "resolve_value",
]

#: papermill's inferred type names -> Python types a value may have.
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def resolve_value(text: str) -> Any:
    """Read a ``-p`` value as papermill does: ``True``, ``False``, ``None``, int, float or str."""
    from papermill.cli import _resolve_type  # papermill's own rule, so both agree exactly

    return _resolve_type(text)


def parse_parameters(
    p: Sequence[tuple[str, str]] = (),
    *,
    raw: Sequence[tuple[str, str]] = (),
    yaml_strings: Sequence[str] = (),
    files: Sequence[str] = (),
) -> dict[str, Any]:
    """Merge parameters given papermill's way (files, then YAML, then raw, then ``-p``)."""
    import yaml

    params: dict[str, Any] = {}
    for source, text in [*((f, Path(f).read_text(encoding="utf-8")) for f in files),
                         *(("-y", y) for y in yaml_strings)]:
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{source}: parameters must be a YAML mapping, got {loaded!r}")
        params.update(loaded)
    params.update(dict(raw))
    params.update({name: resolve_value(value) for name, value in p})
    return params


def check_parameters(declared: Mapping[str, Mapping[str, Any]],
                     params: Mapping[str, Any], *, notebook: str = "notebook") -> list[str]:
    """Problems with ``params`` against a chapter's declared parameters (empty when all fine).

    Each problem names the parameter: an unknown name (with the declared ones), or a value whose
    type does not match the declared annotation (``float`` accepts integers; ``None`` and
    undeclared types such as ``Any`` are accepted).
    """
    problems = []
    for name, value in params.items():
        if name not in declared:
            problems.append(f"{notebook}: unknown parameter {name!r}; declared: "
                            f"{', '.join(sorted(declared))}")
            continue
        type_name = str(declared[name].get("type", "")).replace("Optional[", "").rstrip("]")
        accepted = _ACCEPTED.get(type_name)
        if value is None or accepted is None:
            continue
        ok = isinstance(value, accepted) and not (
            isinstance(value, bool) and bool not in accepted)
        if not ok:
            problems.append(f"{notebook}: parameter {name!r} is {type_name} "
                            f"(default {declared[name].get('default')}), got "
                            f"{type(value).__name__} {value!r}")
    return problems


def chapter_title(path: Path) -> str:
    """The first ``# `` heading of a jupytext notebook's first markdown cell."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return path.stem


def list_chapters() -> list[tuple[str, str]]:
    """``(stem, title)`` of every chapter notebook under ``notebooks/``, in order."""
    from fusion_utils.paths import project_root

    return [(p.stem, chapter_title(p))
            for p in sorted((project_root() / "notebooks").glob("[0-9]*.py"))]


def _cmd_list(_: argparse.Namespace) -> int:
    for stem, title in list_chapters():
        print(f"{stem:24s} {title}")
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from fusion_utils.notebook_runner import notebook_parameters, notebook_path

    path = notebook_path(args.notebook)
    declared = notebook_parameters(path)
    print(f"{path.stem}: {chapter_title(path)}")
    width = max((len(n) for n in declared), default=0)
    for name, info in declared.items():
        print(f"  {name:{width}s}  {info['type']:5s} = {info['default']:22s} {info['help']}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fusion_utils.notebook_runner import (
        NotebookExecutionError,
        execute_notebook,
        notebook_parameters,
        notebook_path,
    )

    try:
        path = notebook_path(args.notebook)
        params = parse_parameters(args.parameters or (), raw=args.parameters_raw or (),
                                  yaml_strings=args.parameters_yaml or (),
                                  files=args.parameters_file or ())
    except (FileNotFoundError, ValueError) as exc:
        print(f"fusion-book run: {exc}", file=sys.stderr)
        return 2
    problems = check_parameters(notebook_parameters(path), params, notebook=path.name)
    if problems:
        print("fusion-book run: " + "\n  ".join(problems)
              + f"\n(see `fusion-book params {path.stem}`)", file=sys.stderr)
        return 2
    out = Path(args.output)
    print(f"running {path.stem} -> {out} with {params or 'the default parameters'}", flush=True)
    t0 = time.perf_counter()
    try:
        execute_notebook(path, out, params, progress_bar=not args.no_progress,
                         log_output=args.log_output)
    except NotebookExecutionError as exc:
        print(f"fusion-book run: FAILED after {time.perf_counter() - t0:.0f} s: {exc}",
              file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - t0:.0f} s: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fusion-book`` argument parser (sub-commands ``list``, ``params``, ``run``)."""
    parser = argparse.ArgumentParser(
        prog="fusion-book", description="List, inspect and run the book's chapters.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the chapters (notebook stems and titles)").set_defaults(
        func=_cmd_list)
    p_params = sub.add_parser("params", help="a chapter's parameters: type, default, help")
    p_params.add_argument("notebook", help="stem (04_fusion) or path of the notebook")
    p_params.set_defaults(func=_cmd_params)
    p_run = sub.add_parser("run", help="execute a chapter with papermill into OUTPUT.ipynb")
    p_run.add_argument("notebook", help="stem (04_fusion) or path of the notebook")
    p_run.add_argument("output", help="executed notebook to write (.ipynb)")
    p_run.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="a parameter, its value typed as papermill -p does")
    p_run.add_argument("-r", "--parameters_raw", nargs=2, action="append",
                       metavar=("NAME", "VALUE"), help="a parameter read as a raw string")
    p_run.add_argument("-y", "--parameters_yaml", action="append", metavar="YAML",
                       help="a YAML mapping of parameters")
    p_run.add_argument("-f", "--parameters_file", action="append", metavar="FILE",
                       help="a YAML file of parameters")
    p_run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p_run.add_argument("--log-output", action="store_true", help="stream cell output")
    p_run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusion-book`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
