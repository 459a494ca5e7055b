"""The repository behind launch buttons is a build setting; the committed config has none."""

from __future__ import annotations

import pytest
import yaml

from fusion_book.settings import repository_settings, write_book_config
from fusion_utils.paths import project_root


def test_committed_config_has_no_repository_and_no_launch_service():
    config = yaml.safe_load((project_root() / "_config.yml").read_text())
    assert not config["repository"].get("url")
    assert not any(config.get("launch_buttons", {}).get(k)
                   for k in ("binderhub_url", "colab_url", "jupyterhub_url", "thebe"))


def test_no_placeholder_url_anywhere_in_the_book_sources():
    root = project_root()
    files = [root / "_config.yml", root / "README.md", *sorted((root / "book").glob("*.md"))]
    for f in files:
        assert "YOUR-GITHUB-USER" not in f.read_text(), f


def test_without_a_url_no_config_is_written(tmp_path):
    assert repository_settings({}) is None
    assert write_book_config(project_root(), tmp_path / "c.yml", {}) is None
    assert not (tmp_path / "c.yml").exists()


def test_with_a_url_the_config_gets_repository_and_launch_buttons(tmp_path):
    env = {"FUSION_REPOSITORY_URL": "https://github.com/someone/fusion-book/"}
    path = write_book_config(project_root(), tmp_path / "c.yml", env)
    config = yaml.safe_load(path.read_text())
    assert config["repository"] == {"url": "https://github.com/someone/fusion-book",
                                    "branch": "main"}
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["title"] == yaml.safe_load((project_root() / "_config.yml").read_text())["title"]


@pytest.mark.parametrize("url", ["github.com/a/b", "https://github.com/YOUR-GITHUB-USER/x",
                                 "https://github.com/<user>/<repo>", "https://github.com/a"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError, match="FUSION_REPOSITORY_URL"):
        repository_settings({"FUSION_REPOSITORY_URL": url})
