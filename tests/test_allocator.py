"""fusion_utils.allocator: freed large blocks stay in the process (no page faults on reuse)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fusion_utils import allocator

CODE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from fusion_utils.allocator import keep_freed_memory
    assert keep_freed_memory()
a = np.ones(200 * 2**20 // 8); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    a = np.ones(200 * 2**20 // 8); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict[str, str] | None = None) -> int:
    out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True,
                         check=True, env=env)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_large_blocks_are_reused_without_page_faults() -> None:
    """glibc maps a fresh 200 MiB block per allocation (page faults on every touch); with the
    setting the freed block is reused and touching it again faults no page."""
    plain = _faults("plain")
    kept = _faults("keep")
    assert plain >= 100  # at least one fault per 2 MiB huge page, three times
    assert kept <= plain // 20


def test_opt_out_and_idempotence(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("FUSION_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator, "_applied", True)  # once applied, never re-run
    assert allocator.keep_freed_memory() is True
