"""The heap trimmer: freed memory goes back to the system on a timer."""

from __future__ import annotations

import threading

import pytest

from vizoflow.errors import ConfigError
from vizoflow.memory import HeapTrimmer, glibc_trim, resident_mb


def test_trims_on_its_timer_and_stops_with_the_run() -> None:
    calls = threading.Semaphore(0)

    def trim() -> int:
        calls.release()
        return 1

    with HeapTrimmer(0.01, trim=trim) as trimmer:
        assert all(calls.acquire(timeout=5) for _ in range(3))  # three trims, each within 5 s
    done = trimmer.trims
    assert done >= 3
    assert not calls.acquire(timeout=0.1)  # the thread has ended with the run
    assert trimmer.status()["heap_trims"] == done


def test_off_when_interval_is_zero_or_null() -> None:
    for interval in (None, 0):
        with HeapTrimmer(interval, trim=lambda: pytest.fail("trimmed while off")) as trimmer:
            pass
        assert trimmer.status() == {"heap_trims": 0, "heap_returned_mb": 0.0}


def test_a_negative_interval_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"runtime\.trim_seconds"):
        HeapTrimmer(-1)


@pytest.mark.skipif(glibc_trim() is None, reason="malloc_trim is glibc's")
def test_memory_freed_below_a_live_block_goes_back_to_the_system() -> None:
    # 64 KB blocks come from malloc's heap, not from mmap: freeing all but the last keeps
    # the heap's top in place, so free() alone cannot give the pages back.
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 125 MB, each block touched (zeroed)
    last = blocks[-1]
    del blocks
    trimmer = HeapTrimmer(60)
    returned = trimmer.trim_once()
    assert returned > 60, f"only {returned:.1f} MB of 125 freed went back"
    assert trimmer.status()["heap_returned_mb"] == pytest.approx(returned, abs=0.1)
    assert resident_mb() > 0
    assert len(last) == 64 * 1024


def test_resident_memory_of_a_process_that_is_gone_is_an_error() -> None:
    with pytest.raises(OSError):
        resident_mb(2**22 + 1)  # above Linux's pid limit
