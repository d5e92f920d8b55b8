"""Keep a live process's memory from creeping up, so a box runs for weeks.

A live process allocates and frees frames, JPEG buffers, encoder buffers and model
outputs, megabytes a second, from dozens of threads. glibc's malloc, left to its
defaults, spreads them over up to eight arenas per core, and once a big block has been
freed it serves blocks of that size from its heaps instead of from fresh pages: the
heaps fragment, and RSS climbs for an hour or more before it levels off
(``docs/scale.md``). Three things keep it down:

- :func:`tune_malloc`, once at start: few arenas (``runtime.malloc_arenas``) and a
  fixed size above which blocks are mapped on their own and unmapped when freed
  (``runtime.mmap_threshold_kb``);
- :class:`HeapTrimmer`, on a timer: ``malloc_trim(0)`` returns the free pages inside
  the heaps;
- :func:`release_arrow_memory`, called by the thread that has just written a table:
  Arrow's own allocator (mimalloc) keeps the pages a thread freed with that thread,
  out of reach of ``malloc_trim`` and of any other thread.

Only glibc has ``mallopt`` and ``malloc_trim``; elsewhere (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vizoflow.errors import ConfigError

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
MAX_MMAP_THRESHOLD_KB = 32 * 1024  # glibc refuses more on 64-bit systems


def _libc_function(name: str, argtypes: list[type], restype: type) -> Any | None:
    """A function of the C library the process already runs on, typed; None where it has none."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = argtypes, restype
    return function


def tune_malloc(arenas: int | None, mmap_threshold_kb: int | None) -> dict[str, int]:
    """Set glibc malloc's arena limit and mmap threshold for this process.

    Call it before the process starts its threads: an arena, once made, stays. A
    threshold set here also stops glibc from raising it after each big free, which is
    what sends frame-sized blocks into the heaps.

    Args:
        arenas: At most this many malloc arenas (``runtime.malloc_arenas``); None leaves
            glibc's default (8 per core, or ``MALLOC_ARENA_MAX``).
        mmap_threshold_kb: Blocks of this many KB or more get pages of their own
            (``runtime.mmap_threshold_kb``); None leaves glibc's sliding threshold.

    Returns:
        The settings applied, by name; empty where the C library has no ``mallopt``.

    Raises:
        ConfigError: A value out of range, named by its setting.
    """
    wanted: dict[str, tuple[int, int, int]] = {}  # setting: (mallopt parameter, its value, the setting's value)
    if arenas is not None:
        if arenas < 1:
            raise ConfigError(f"runtime.malloc_arenas must be 1 or more, or null, got {arenas!r}")
        wanted["malloc_arenas"] = (M_ARENA_MAX, arenas, arenas)
    if mmap_threshold_kb is not None:
        if not 1 <= mmap_threshold_kb <= MAX_MMAP_THRESHOLD_KB:
            raise ConfigError(f"runtime.mmap_threshold_kb must be 1 to {MAX_MMAP_THRESHOLD_KB}, or null, "
                              f"got {mmap_threshold_kb!r}")
        wanted["mmap_threshold_kb"] = (M_MMAP_THRESHOLD, mmap_threshold_kb * 1024, mmap_threshold_kb)
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
    if mallopt is None:
        if wanted:
            log.info("runtime.malloc_arenas, runtime.mmap_threshold_kb: this C library has no mallopt")
        return {}
    for name, (param, value, _) in wanted.items():
        if mallopt(param, value) != 1:
            raise ConfigError(f"runtime.{name}: malloc refused {value}")
    return {name: shown for name, (_, _, shown) in wanted.items()}


def glibc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None where the C library has none."""
    trim = _libc_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
    return None if trim is None else lambda: trim(0)


def release_arrow_memory() -> None:
    """Give back to the system the pages Arrow's allocator holds free for this thread.

    pyarrow allocates from mimalloc, which keeps what a thread freed for that thread's
    next allocations. A table writer allocates megabytes once every few minutes, so
    those pages sat unused: on four live cameras mimalloc's resident memory went 22 ->
    28 MB from minute 14 to 34 of an hour (``docs/scale.md``). Releasing from another
    thread (the trimmer's) returns nothing, hence this call after each write. It costs
    about a microsecond when there is nothing to give back.
    """
    import pyarrow as pa  # not at the top: the CLI imports this module before malloc is tuned, and pyarrow starts a thread

    pa.default_memory_pool().release_unused()


def resident_mb(pid: int | str = "self") -> float:
    """Resident memory (``VmRSS``) of a process, this one by default, in MB.

    Raises:
        OSError: no such process, or no ``/proc`` (the trimmer only runs on glibc, hence Linux).
    """
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    if found is None:
        raise OSError(f"/proc/{pid}/status has no VmRSS")
    return int(found.group(1)) / 1024


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` every ``interval`` seconds in a daemon thread.

    Use as a context manager around a run. A trim holds each malloc arena's lock while it
    walks it; once a minute left the share of frames processed on four live cameras as
    it was (0.995). ``status()`` gives the MB returned so far (``/metrics``).

    Args:
        interval: Seconds between trims (``runtime.trim_seconds``); None or 0 turns it off.
        trim: The trim call (tests give their own); default glibc's, when there is one.

    Raises:
        ConfigError: ``interval`` is negative (its type is checked with the config's, in
            :mod:`vizoflow.config_keys`).
    """

    def __init__(self, interval: float | None = 60.0, trim: Callable[[], int] | None = None) -> None:
        if interval is not None and interval < 0:
            raise ConfigError(f"runtime.trim_seconds must be a number of seconds >= 0 or null, got {interval!r}")
        self.interval = float(interval or 0)
        self._trim = trim if trim is not None else (glibc_trim() if self.interval else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0
        self.returned_mb = 0.0

    def __enter__(self) -> HeapTrimmer:
        if self.interval and self._trim is not None:
            self._thread = threading.Thread(target=self._loop, name="vizoflow-heap-trim", daemon=True)
            self._thread.start()
        elif self.interval:
            log.info("runtime.trim_seconds: this C library has no malloc_trim; freed memory stays with malloc")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def trim_once(self) -> float:
        """Trim now; returns the MB of resident memory given back (0 when nothing was)."""
        if self._trim is None:
            return 0.0
        before = resident_mb()
        self._trim()
        returned = max(before - resident_mb(), 0.0)
        self.trims += 1
        self.returned_mb += returned
        return returned

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.trim_once()

    def status(self) -> dict[str, float]:
        """Trims so far and the MB they gave back, for the live status."""
        return {"heap_trims": self.trims, "heap_returned_mb": round(self.returned_mb, 1)}
