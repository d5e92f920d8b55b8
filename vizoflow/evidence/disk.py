"""The free space of the evidence disk, one reader for every camera's clips."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class DiskGuard:
    """Says whether a new clip may start: free space in the evidence folder above ``min_free_mb``.

    One guard per evidence folder: several cameras write their clips to one disk, so
    its free space is one number, reported once (not once per camera and summed).

    Args:
        directory: The evidence folder.
        min_free_mb: Below this much free space no new clip is started (analysis goes on).
    """

    CHECK_SECONDS = 5.0  # free space is re-read at most this often

    def __init__(self, directory: Path, min_free_mb: float) -> None:
        self.directory, self.min_free_mb = directory, min_free_mb
        self.free_mb, self._checked = float("inf"), float("-inf")
        self.low = False
        self._lock = threading.Lock()

    def ok(self) -> bool:
        """Whether there is room for a new clip (logs once when that changes)."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.CHECK_SECONDS:
                self._checked = now
                self.free_mb = shutil.disk_usage(self.directory).free / 2**20
                low = self.free_mb < self.min_free_mb
                if low != self.low:
                    if low:
                        log.error("DISK LOW: %.0f MB free in %s (< %.0f MB): not writing new clips; analysis goes on",
                                  self.free_mb, self.directory, self.min_free_mb)
                    else:
                        log.warning("disk space back (%.0f MB free): writing clips again", self.free_mb)
                    self.low = low
            return not self.low

    def status(self) -> dict[str, float]:
        """``disk_low`` (0/1) and ``disk_free_mb`` (-1 before the first reading)."""
        return {"disk_low": float(self.low), "disk_free_mb": self.free_mb if self.free_mb != float("inf") else -1.0}
