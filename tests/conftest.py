"""Shared fixtures: the real data samples in ../shared/data and a tiny demo cohort."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fusion_utils.paths import project_root, shared_data_dir

ROOT = project_root(Path(__file__).parent)
os.environ.setdefault("FUSION_PROJECT_ROOT", str(ROOT))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: the real samples from ../shared/data are absent "
                    "(set FUSION_SHARED_DATA to their folder to run this test)")
    return path


@pytest.fixture(scope="session")
def shared_ptbxl() -> Path:
    """Folder of the real PTB-XL sample (full table, 1,959 records at 100 Hz); skips when absent."""
    return _require(shared_data_dir() / "ptbxl" / "ptbxl_database.csv", "PTB-XL sample").parent


@pytest.fixture(scope="session")
def shared_ham() -> Path:
    """Folder of the real HAM10000 sample; skips when absent.

    Full metadata, 273 originals, 10,015 at 200x150.
    """
    return _require(shared_data_dir() / "ham10000" / "HAM10000_metadata.csv",
                    "HAM10000 sample").parent


@pytest.fixture(scope="session")
def demo_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic cohort in the real on-disk formats.

    The folder holds ``<dir>/ptbxl`` and ``<dir>/ham10000``.
    """
    from fusion_utils.data.demo import write_demo_cohort

    out = tmp_path_factory.mktemp("demo")
    write_demo_cohort(out, n_ptbxl=60, n_ham=60, seed=0)
    return out


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch thread.

    Small ops on a busy 2-core machine avoid OpenMP contention that way.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
