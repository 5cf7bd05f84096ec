"""Host memory: keep freed blocks in the process for reuse instead of handing them back to the OS.

PyTorch allocates CPU tensors with plain malloc. With glibc, a block above the mmap threshold
(128 KiB to 32 MiB, adapting) is a fresh mmap that goes back to the OS when freed, so the large
tensors of every training step -- BERT's dense word-embedding gradient (vocabulary x hidden fp32,
47 MB for MiniLM), the feed-forward activations -- page-fault on first touch, every step. Raising
glibc's mmap and trim thresholds (mallopt(3)) keeps such blocks in the heap, which is what
jemalloc or tcmalloc do when preloaded, as PyTorch's CPU performance guide recommends. The price:
the process keeps its peak heap instead of shrinking between steps, and glibc's heap can fragment
(a freed block that a small allocation has nibbled is not reused for the next block of the same
size: the reason the test checks retention only). What it saves and costs, measured: README,
Training details. Other C libraries and platforms: a no-op. Opted into by
lib.model.cpu_speedups.apply_cpu_speedups.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # bytes: any tensor a step allocates stays below this


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and never trim it; True if it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
