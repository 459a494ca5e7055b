"""Every command the book prints works (README.md, book/*.md, the notebooks).

:mod:`fusion_book.commands` collects and checks them; a small subset runs end to end on a tiny
demo cohort (about a minute on 2 cores).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_book import cli
from fusion_book.commands import (
    ROOT,
    Command,
    check_command,
    collect_commands,
    exercise_commands,
)

COMMANDS = collect_commands()


def test_the_book_prints_commands_of_every_kind():
    kinds = {c.text.split()[0] + (" -m" if c.text.startswith("python -m") else "")
             for c in COMMANDS}
    assert {"fusion-book", "jupytext", "python -m", "make"} <= kinds
    runs = [c for c in COMMANDS if c.text.startswith("fusion-book run")]
    assert {Path(c.where).name for c in runs} >= {f"{p.stem}.py" for p in
                                                  (ROOT / "notebooks").glob("[0-9]*.py")}


@pytest.mark.parametrize("cmd", COMMANDS, ids=str)
def test_printed_command_works(cmd: Command) -> None:
    try:
        problems = check_command(cmd)
    except (SystemExit, FileNotFoundError, ValueError) as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    assert not problems, f"{cmd}\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("text, expected", [
    ("papermill notebooks/04_fusion.py out.ipynb -p encoding standardised", "cannot read"),
    ("fusion-book run 04_fusion out.ipynb -p encodingg standardised", "unknown parameter"),
    ("fusion-book run 04_fusion out.ipynb -p max_epochs many", "'max_epochs' is int"),
    ("fusion-book run 04_fusions out.ipynb", "no notebook"),
    ("jupytext --to ipynb -o - notebooks/06_interpretability.py | papermill - o.ipynb -k python3"
     " -p run_dir x", "unknown parameter 'run_dir'"),
    ("python -m fusion_utils.no_such_module", "no module"),
    ("make bookk", "no make target"),
])
def test_the_checker_catches_broken_commands(text: str, expected: str) -> None:
    try:
        problems = check_command(Command("t", text))
    except (SystemExit, FileNotFoundError, ValueError) as exc:
        problems = [str(exc)]
    assert any(expected in p for p in problems), problems


def test_collection_joins_continuations_and_strips_notebook_comments(tmp_path):
    nb = tmp_path / "x.py"
    nb.write_text("# %% [markdown]\n# ```bash\n# fusion-book run 04_fusion o.ipynb \\\n"
                  "#     -p l2 0.1\n# jupytext --to ipynb -o - notebooks/04_fusion.py \\\n"
                  "#   | papermill - o.ipynb -k python3\n# ```\n# Or `make book` and `make`.\n")
    got = [c.text for c in collect_commands([nb])]
    assert got == ["fusion-book run 04_fusion o.ipynb -p l2 0.1",
                   "jupytext --to ipynb -o - notebooks/04_fusion.py | papermill - o.ipynb "
                   "-k python3", "make book"]


def test_exercise_commands_are_read_from_the_exercises_section():
    got = exercise_commands(ROOT / "notebooks" / "04_fusion.py")
    assert got[0] == "fusion-book run 03_feature_extraction 03_ptbxl.ipynb -p dataset ptbxl"
    assert "fusion-book run 04_fusion out.ipynb -p encoding standardised" in got
    for nb in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        assert exercise_commands(nb), f"{nb.name}: no fusion-book run command in its exercises"


# A chosen subset, executed on a tiny demo cohort: the intro's example and a data-preparation
# exercise (chapters that need no earlier output; together well under a minute on an idle
# 2-core machine). The metadata-only chapter is left out: its bootstrap and permutations take
# minutes even on 60 records.
END_TO_END = [
    ("book/intro.md",
     "fusion-book run 01_data_preparation out.ipynb -p dataset ham10000 -p seed 1"),
    ("notebooks/01_data_preparation.py", "fusion-book run 01_data_preparation ptbxl_group.ipynb "
     "-p split_scheme group -p manifest_path cache/manifests/ptbxl_group.parquet"),
]


def test_installed_console_script_lists_the_chapters():
    exe = Path(sys.executable).parent / "fusion-book"
    exe = str(exe) if exe.exists() else shutil.which("fusion-book")
    if exe is None:
        pytest.skip("fusion-book is not installed (pip install -e .)")
    out = subprocess.run([exe, "list"], capture_output=True, text=True, check=True).stdout
    assert [line.split()[0] for line in out.splitlines()] == sorted(
        p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("where, text", END_TO_END)
def test_chosen_commands_run_end_to_end_on_the_demo_cohort(where, text, demo_cohort, tmp_path,
                                                           monkeypatch):
    assert Command(where, text) in COMMANDS, f"{text!r} is no longer printed in {where}"
    args = cli.build_parser().parse_args(shlex.split(text)[1:])
    params = dict(args.parameters)
    # The printed data_dir points at a folder of the reader's; here the tiny demo cohort.
    params["data_dir"] = str(demo_cohort / params.get("dataset", "ptbxl"))
    if args.notebook == "01_data_preparation":
        params["manifest_path"] = str(tmp_path / "manifest.parquet")
    out = tmp_path / args.output
    argv = ["run", args.notebook, str(out), "--no-progress"]
    for name, value in params.items():
        argv += ["-p", name, value]
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 0
    assert out.is_file()
