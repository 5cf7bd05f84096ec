"""lib/model/host_memory.py: after keep_freed_memory, freed large blocks stay in the process."""

import sys

import pytest
import torch

from lib.model.host_memory import keep_freed_memory


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_tensors_stay_resident():
    size = 96 * 2**20  # far above glibc's default mmap threshold (at most 32 MiB)
    assert keep_freed_memory()
    block = torch.ones(size // 4)  # touched: resident
    allocated = resident_bytes()
    del block
    # glibc would unmap it (RSS - 96 MiB); kept, a later step can reuse it without page faults
    assert resident_bytes() > allocated - size // 2
