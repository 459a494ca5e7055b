"""Keep freed memory in the process so that large tensors are not mapped and unmapped per batch.

glibc's ``malloc`` serves every block above 32 MiB (its largest mmap threshold) with a fresh
``mmap`` and gives it back with ``munmap`` when freed. A CNN's activations for a batch of images
are such blocks, so each batch page-faults every one of their pages again: on the real HAM10000
images (efficientnet_lite0, batch 128, 2 cores) the kernel time was as large as the compute and
extraction ran at 17.5 images/s; with freed memory kept in the heap it ran at 47.1
(``benchmarks/bench_extraction.py --pipeline --batch-size 128``, same run). The same holds for
the classifier's large temporary matrices and the scalograms' FFT buffers.

:func:`keep_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (large blocks come from the heap too)
and ``M_TRIM_THRESHOLD`` to 2 GiB (freed memory at the top of the heap is kept for reuse), the
in-process equivalent of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...``. The process then
keeps its peak resident memory until it ends; no result changes (allocation does not change
arithmetic). Deliberately hand-written (``ctypes``): jemalloc or tcmalloc would do the same but
need a system library and ``LD_PRELOAD`` before the process starts. Elsewhere than glibc Linux,
or with ``FUSION_KEEP_FREED_MEMORY=0``, it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Freed memory kept at the top of the heap (the largest value mallopt's int takes, ~2 GiB).
TRIM_THRESHOLD = 2**31 - 1

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to serve large blocks from the heap and keep freed memory.

    Idempotent and cheap: called at the start of feature extraction, fine-tuning, scalogram
    batches and classifier fits. Returns whether the setting is in effect.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("FUSION_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
            "linux"):
        return _applied
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return _applied
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    return _applied
