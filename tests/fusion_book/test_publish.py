"""Publishing: the Pages workflow builds with the README's commands; make publish needs a book."""

from __future__ import annotations

import re
import subprocess

import yaml

from fusion_utils.paths import project_root

ROOT = project_root()


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())


def _readme_make_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^(make \w+)", quick, re.MULTILINE)


def test_workflow_builds_with_the_readme_commands_and_deploys_pages():
    wf = _workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in on
    build = wf["jobs"]["build"]
    runs = [s["run"] for s in build["steps"] if "run" in s]
    uses = [s["uses"].split("@")[0] for s in wf["jobs"]["build"]["steps"] if "uses" in s]
    readme = _readme_make_commands()
    assert readme == ["make book", "make test"]
    for cmd in readme:
        assert any(r.strip().startswith(cmd) for r in runs), f"the workflow does not run {cmd}"
    assert {"actions/checkout", "actions/setup-python", "actions/cache",
            "actions/upload-pages-artifact"} <= set(uses)
    cache = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == ".venv"
    upload = next(s for s in build["steps"]
                  if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    deploy = [s["uses"].split("@")[0] for s in wf["jobs"]["deploy"]["steps"]]
    assert deploy == ["actions/deploy-pages"] and wf["permissions"]["pages"] == "write"


def test_make_publish_refuses_without_a_built_book(tmp_path):
    res = subprocess.run(["make", "publish", f"BOOK_HTML={tmp_path}/html"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert "no built book" in res.stderr and "make book" in res.stderr
    branches = subprocess.run(["git", "branch", "--list", "gh-pages"], cwd=ROOT,
                              capture_output=True, text=True).stdout
    assert branches.strip() == ""  # nothing was published


def test_make_publish_pushes_the_built_folder_with_ghp_import(tmp_path):
    (tmp_path / "index.html").write_text("<html></html>")
    res = subprocess.run(["make", "-n", "publish", f"BOOK_HTML={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    cmd = res.stdout.replace("\\\n", " ")
    assert re.search(rf"ghp-import .*--push .*--branch gh-pages .*{re.escape(str(tmp_path))}",
                     cmd), cmd
