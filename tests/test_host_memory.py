"""lib/host_memory.py: after keep_freed_memory, freed large blocks stay in the process."""

import sys

import pytest
import torch

from lib.host_memory import keep_freed_memory


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_tensors_stay_resident_for_reuse():
    size = 96 * 2**20  # far above glibc's default mmap threshold (at most 32 MiB)
    assert keep_freed_memory()
    start = resident_bytes()
    for _ in range(3):  # like a training step's temporaries
        block = torch.ones(size // 4)  # touched: resident
        allocated = resident_bytes()
        del block
        # glibc would unmap it (RSS - 96 MiB); kept, the next step reuses it without page faults
        assert resident_bytes() > allocated - size // 2
    assert resident_bytes() < start + 2.5 * size  # reused, not one new block per step
