"""Folder resolution: project root, demo defaults, relative data folders, dataset names."""

from __future__ import annotations

import pytest

from fusion_utils import paths


def test_project_root_is_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("FUSION_PROJECT_ROOT", raising=False)
    root = paths.project_root()
    assert (root / "_toc.yml").is_file() and (root / "pyproject.toml").is_file()
    monkeypatch.setenv("FUSION_PROJECT_ROOT", str(tmp_path))
    assert paths.project_root() == tmp_path.resolve()


def test_empty_data_dir_means_the_demo_cohort(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_PROJECT_ROOT", str(tmp_path))
    assert paths.resolve_data_dir("ptbxl", "") == tmp_path / "data" / "demo" / "ptbxl"
    assert paths.resolve_data_dir("HAM10000", None) == tmp_path / "data" / "demo" / "ham10000"
    assert paths.resolve_data_dir("ptbxl", "elsewhere/x") == (tmp_path / "elsewhere" / "x")
    assert paths.resolve_data_dir("ptbxl", "/abs/p").as_posix() == "/abs/p"


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError, match="ptbxl, ham10000"):
        paths.check_dataset("mnist")
    assert paths.check_dataset("PTB-XL") == "ptbxl"


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))
    assert paths.cache_dir("features") == tmp_path / "features"


def test_missing_data_folder_error_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_PROJECT_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m fusion_utils.data.demo"):
        paths.require_data_dir("ptbxl", "")
    with pytest.raises(FileNotFoundError, match="check the data_dir parameter"):
        paths.require_data_dir("ham10000", tmp_path / "nowhere")
    (tmp_path / "real").mkdir()
    assert paths.require_data_dir("ptbxl", tmp_path / "real") == tmp_path / "real"
