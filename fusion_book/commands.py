"""The commands the book prints, collected from its sources and checked without running them.

:func:`collect_commands` reads README.md, book/*.md and the notebooks' markdown (fenced shell
blocks and inline code spans; ``\\`` continuations joined, a leading ``.venv/bin/`` and
``VAR=value`` assignments dropped) and keeps the commands a reader would type:
``fusion-book``, ``jupytext ... | papermill``, ``papermill``, ``python -m`` and ``make``.
:func:`check_command` checks one of them:

- ``fusion-book run|params|list``: the notebook exists; every ``-p``/``-r``/``-y`` parameter is
  declared in its ``parameters`` cell with a value of the declared type (the CLI's own parser
  and checks, so the check and the command agree);
- ``jupytext ... notebooks/X.py | papermill - OUT ...``: the same for the pipe; ``papermill``
  given a ``.py`` file fails (papermill reads only ``.ipynb``), so it is reported;
- ``python -m X``: the module imports and has a ``main`` (or is a package with ``__main__``),
  and the YAML/Python files it names exist;
- ``make T``: ``T`` is a target of the Makefile.

``tests/test_book_commands.py`` runs the check on every command, and a few end to end.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from fusion_book import cli
from fusion_utils.notebook_runner import notebook_parameters, notebook_path
from fusion_utils.paths import project_root

__all__ = ["SOURCES", "Command", "check_command", "collect_commands", "collect_commands_from_text",
           "exercise_commands", "make_targets"]

ROOT = project_root()
#: The files whose commands are collected.
SOURCES = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md")),
           *sorted((ROOT / "notebooks").glob("*.py"))]

_SHELL = ("bash", "sh", "shell", "console", "")
#: Inline spans that name a command in prose rather than print one to run.
_MENTIONS = {"fusion-book run", "fusion-book params", "fusion-book list"}
_INLINE_RE = re.compile(r"`([^`\n]+)`")
_STARTS = ("fusion-book ", "jupytext ", "papermill ", "python -m ", "make ")


@dataclass(frozen=True)
class Command:
    """One printed command and where it is printed."""

    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def _markdown_of(path: Path) -> str:
    """The text a reader sees: markdown files as they are, notebooks' comment lines unprefixed."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text
    return "\n".join(line[2:] if line.startswith("# ") else line[1:] if line == "#" else ""
                     for line in text.splitlines())


def _normalise(line: str) -> str | None:
    line = line.split(" # ")[0].strip().removeprefix("$ ")
    line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line)  # VAR=value make book
    line = re.sub(r"(?:^|(?<=\| ))\.venv/bin/", "", line)
    return (line if line.startswith(_STARTS) or line.startswith(("jupytext", "fusion-book"))
            else None)


def _split_fences(text: str) -> tuple[list[str], str]:
    """Shell code blocks (``bash``, ``sh``, ``shell``, ``console`` or no language) and the text
    outside every fence, read line by line as CommonMark pairs fences: a fence closes on a line
    of at least as many backticks as opened it, so ```` ````{admonition} ```` blocks that hold
    ```` ```python ```` blocks pair up correctly. Shell blocks nested in a directive are kept."""
    blocks: list[str] = []
    outside: list[str] = []
    stack: list[tuple[int, str, list[str]]] = []  # (backticks, info, lines)
    for line in text.splitlines():
        stripped = line.strip()
        ticks = len(stripped) - len(stripped.lstrip("`"))
        if stack and ticks >= stack[-1][0] and stripped == "`" * ticks:
            _, info, lines = stack.pop()
            if info in _SHELL:
                blocks.append("\n".join(lines))
            elif info.startswith("{"):  # a directive's prose: its inline code counts
                outside.extend(lines)
        elif ticks >= 3 and (not stack or stack[-1][1].startswith("{")):
            stack.append((ticks, stripped[ticks:].strip(), []))
        elif stack:
            stack[-1][2].append(line)
        else:
            outside.append(line)
    return blocks, "\n".join(outside)


def collect_commands_from_text(text: str, where: str) -> list[Command]:
    """The commands printed in one markdown text (see :func:`collect_commands`)."""
    found: list[Command] = []
    blocks, outside = _split_fences(text)
    for block in blocks:
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        joined = re.sub(r"\n\s*\|", " |", joined)  # a pipe continued on the next line
        for line in joined.splitlines():
            cmd = _normalise(line)
            if cmd:
                found.append(Command(where, cmd))
    for span in _INLINE_RE.findall(outside):
        cmd = _normalise(span)
        if cmd and " " in cmd and cmd not in _MENTIONS:
            found.append(Command(where, cmd))
    return found


def collect_commands(paths: list[Path] = SOURCES) -> list[Command]:
    """Every command printed in ``paths`` (see the module docstring)."""
    found: list[Command] = []
    for path in paths:
        where = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        found += collect_commands_from_text(_markdown_of(path), where)
    return found


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.MULTILINE))


def _check_params(nb: str, params: dict) -> list[str]:
    path = notebook_path(nb)
    return cli.check_parameters(notebook_parameters(path), params, notebook=path.name)


def _check_fusion_book(argv: list[str]) -> list[str]:
    args = cli.build_parser().parse_args(argv)
    if args.command == "list":
        return []
    if args.command == "params":
        notebook_path(args.notebook)
        return []
    files = [f for f in args.parameters_file or [] if (ROOT / f).is_file()]
    params = cli.parse_parameters(args.parameters or (), raw=args.parameters_raw or (),
                                  yaml_strings=args.parameters_yaml or (), files=files)
    if not args.output.endswith(".ipynb"):
        return [f"output {args.output!r} is not an .ipynb"]
    return _check_params(args.notebook, params)


def _check_pipe(text: str) -> list[str]:
    left, _, right = text.partition("|")
    src = [a for a in shlex.split(left) if a.endswith(".py")]
    if len(src) != 1 or not (ROOT / src[0]).is_file():
        return [f"jupytext input {src} is not one notebook of the project"]
    argv = shlex.split(right)
    if argv[:1] != ["papermill"] or "-" not in argv[1:3]:
        return ["the pipe must end in `papermill -` (read the notebook from stdin)"]
    if "--help-notebook" in argv:
        return []
    rest = argv[argv.index("-") + 1:]
    if not rest or not rest[0].endswith(".ipynb"):
        return [f"papermill output {rest[:1]} is not an .ipynb"]
    opts = [a for a in rest[1:]]
    if "-k" in opts:
        i = opts.index("-k")
        del opts[i:i + 2]
    return _check_fusion_book(["run", Path(src[0]).stem, rest[0], *opts])


def _check_python_m(argv: list[str]) -> list[str]:
    module = argv[2]
    spec = importlib.util.find_spec(module)
    if spec is None:
        return [f"no module {module}"]
    if spec.submodule_search_locations is not None:  # a package: it needs a __main__
        return [] if importlib.util.find_spec(f"{module}.__main__") else [
            f"package {module} has no __main__"]
    mod = importlib.import_module(module)
    if not callable(getattr(mod, "main", None)):
        return [f"{module} has no main()"]
    missing = [a for a in argv[3:] if re.fullmatch(r"[\w./-]+\.(?:ya?ml|py)", a)
               and "my_" not in a and not (ROOT / a).is_file()]
    return [f"file {m} does not exist" for m in missing]


def check_command(cmd: Command) -> list[str]:
    """Problems with one command (empty when it works as printed)."""
    text = cmd.text
    if text.startswith("jupytext") and "|" in text:
        return _check_pipe(text)
    argv = shlex.split(text)
    if argv[0] == "fusion-book":
        return _check_fusion_book(argv[1:])
    if argv[0] == "papermill":
        bad = [a for a in argv[1:3] if a.endswith(".py")]
        return [f"papermill cannot read {bad[0]} (a .py notebook): use `fusion-book run`"] if bad \
            else []
    if argv[:2] == ["python", "-m"]:
        return _check_python_m(argv)
    if argv[0] == "make":
        unknown = [t for t in argv[1:] if "=" not in t and t not in make_targets()]
        return [f"no make target {t}" for t in unknown]
    return []


def exercise_commands(notebook: Path) -> list[str]:
    """The ``fusion-book run`` commands printed in a notebook's ``Exercises`` section (with its
    solutions and the commands it asks to run first), in order."""
    text = _markdown_of(notebook)
    section = text.split("## Exercises", 1)[1] if "## Exercises" in text else ""
    return [c.text for c in collect_commands_from_text(section, notebook.name)
            if c.text.startswith("fusion-book run")]
