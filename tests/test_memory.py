"""Memory a live process frees goes back to the system: the heap trimmer, Arrow's pages, malloc's settings."""

from __future__ import annotations

import ctypes
import threading

import pyarrow as pa
import pytest

from tests.conftest import run_python
from vizoflow.errors import ConfigError
from vizoflow.memory import HeapTrimmer, glibc_trim, release_arrow_memory, resident_mb, tune_malloc


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


def test_memory_arrow_freed_goes_back_when_the_thread_that_freed_it_releases() -> None:
    buffers = [pa.allocate_buffer(64 * 1024) for _ in range(2000)]  # 125 MB in mimalloc's pages
    for buffer in buffers:
        ctypes.memset(buffer.address, 1, buffer.size)  # touched: resident
    del buffers, buffer
    held = resident_mb()
    release_arrow_memory()
    assert held - resident_mb() > 60, "Arrow's allocator kept the pages this thread freed"


def test_resident_memory_of_a_process_that_is_gone_is_an_error() -> None:
    with pytest.raises(OSError):
        resident_mb(2**22 + 1)  # above Linux's pid limit


# tune_malloc changes the process for good, so each check runs in a process of its own.
ARENA_SHAPE = r"""
import threading
from vizoflow.memory import tune_malloc
print(tune_malloc(ARENAS, None))
ready, done = threading.Barrier(9), threading.Event()
def work():
    block = bytearray(64 * 1024)  # below the mmap threshold: from this thread's arena
    ready.wait(); done.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
ready.wait()
maps = [line.split()[0].split("-") for line in open("/proc/self/maps")]
heaps = 0  # a thread arena's heap: 64 MB of address space at a 64 MB boundary
for (start, end), (nstart, nend) in zip(maps, maps[1:] + [["0", "0"]]):
    s = int(start, 16)
    top = int(nend, 16) if int(nstart, 16) == int(end, 16) else int(end, 16)
    heaps += s % (64 << 20) == 0 and top - s == 64 << 20
done.set(); [t.join() for t in threads]
print(heaps)
"""

BIG_BLOCKS = r"""
import ctypes
from vizoflow.memory import tune_malloc
print(tune_malloc(None, THRESHOLD))
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.mallinfo2.restype = [ctypes.c_void_p], Info
libc.free(libc.malloc(4 << 20))  # a 4 MB block, mapped, then freed: glibc raises its threshold to 4 MB
mapped = libc.mallinfo2().hblkhd  # bytes in blocks with pages of their own
kept = libc.malloc(1 << 20)      # a frame-sized block after it
print((libc.mallinfo2().hblkhd - mapped) >> 20)  # MB of it with pages of its own
"""


def _python(code: str) -> list[str]:
    return run_python(code, timeout=60).stdout.split("\n")


@pytest.mark.skipif(glibc_trim() is None, reason="mallopt is glibc's")
def test_threads_share_the_arenas_they_are_given() -> None:
    applied, heaps = _python(ARENA_SHAPE.replace("ARENAS", "2"))[:2]
    assert applied == "{'malloc_arenas': 2}"
    assert int(heaps) <= 1  # the main arena and at most one more
    _, heaps = _python(ARENA_SHAPE.replace("ARENAS", "None"))[:2]
    assert int(heaps) >= 4  # glibc's default: an arena per thread, up to 8 per core


@pytest.mark.skipif(glibc_trim() is None, reason="mallopt is glibc's")
def test_frame_sized_blocks_keep_pages_of_their_own_after_a_bigger_free() -> None:
    applied, mapped_mb = _python(BIG_BLOCKS.replace("THRESHOLD", "128"))[:2]
    assert applied == "{'mmap_threshold_kb': 128}"
    assert int(mapped_mb) == 1  # the 1 MB block is mapped, so freeing it unmaps it
    _, mapped_mb = _python(BIG_BLOCKS.replace("THRESHOLD", "None"))[:2]
    assert int(mapped_mb) == 0  # glibc's sliding threshold put it in the heap


@pytest.mark.parametrize(("arenas", "threshold", "named"), [
    (0, None, "runtime.malloc_arenas"), (None, 0, "runtime.mmap_threshold_kb"),
    (None, 64 * 1024, "runtime.mmap_threshold_kb"),
])
def test_a_setting_out_of_range_is_named(arenas: int | None, threshold: int | None, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        tune_malloc(arenas, threshold)
