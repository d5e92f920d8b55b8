"""Retention of ``segments/``: a day of clips must not fill the disk.

Only clips whose evidence is fully delivered may go: the incident is reported and
the clip lives on the upload server. Clips still waiting for delivery, clips kept
only locally (no upload URL: the local file *is* the evidence) and files the
outbox does not know are never deleted, whatever the limits say. The one
exception: back-to-back segments (``evidence.mode=time``) in which no event
started are not evidence; they go by the same limits once ``UNRECORDED_GRACE`` old.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vizoflow.errors import ConfigError
from vizoflow.evidence.outbox import LINKED, REPORTED, Item, Outbox

log = logging.getLogger(__name__)

UNRECORDED_GRACE = 600.0  # seconds before an unrecorded time-mode segment counts as eventless


def delivered(item: Item) -> bool:
    """The clip exists elsewhere and its incident is reported: the local copy may go."""
    return item.state in (REPORTED, LINKED) and bool(item.video_url) and not item.video_url.startswith("file:")


@dataclass
class Sweep:
    """What one retention pass did."""

    deleted: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    total_bytes: int = 0        # clips left in the folder
    undeletable_bytes: int = 0  # of those, pending, local-only or unknown to the outbox
    over_limit: bool = False    # still above max_total_gb: pending clips hold the space


class Retention:
    """Deletes delivered clips older than ``max_age_hours``, then oldest first above ``max_total_gb``.

    Args:
        outbox: The evidence outbox (says which clips are delivered).
        directory: The clips folder.
        max_age_hours: Delivered clips older than this go (None: no age limit).
        max_total_gb: Total size of clips to stay under (None: no size limit).
        clock: Wall clock (tests).
    """

    def __init__(self, outbox: Outbox, directory: str | Path, max_age_hours: float | None = None,
                 max_total_gb: float | None = None, clock: Callable[[], float] = time.time) -> None:
        if (max_age_hours is not None and max_age_hours <= 0) or (max_total_gb is not None and max_total_gb <= 0):
            raise ConfigError(f"evidence.retention: limits must be > 0 or null, got max_age_hours={max_age_hours}, "
                              f"max_total_gb={max_total_gb}")
        self.outbox, self.directory = outbox, Path(directory)
        self.max_age_hours, self.max_total_gb, self.clock = max_age_hours, max_total_gb, clock

    def sweep(self) -> Sweep:
        """One pass over the folder."""
        result = Sweep()
        if self.max_age_hours is None and self.max_total_gb is None:
            return result
        now = self.clock()
        files = list(self.directory.glob("*.mp4"))
        by_name = self.outbox.by_segment_name(path.name for path in files)
        clips = []  # (mtime, size, path, deletable)
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            item = by_name.get(path.name)
            # not in the outbox: an eventless time segment, or a clip about to be recorded
            deletable = (delivered(item) if item is not None
                         else "_time_" in path.name and st.st_mtime < now - UNRECORDED_GRACE)
            clips.append((st.st_mtime, st.st_size, path, deletable))
        clips.sort(key=lambda c: c[0])
        total = sum(size for _, size, _, _ in clips)
        cutoff = now - 3600 * self.max_age_hours if self.max_age_hours is not None else float("-inf")
        limit = self.max_total_gb * 2**30 if self.max_total_gb is not None else float("inf")
        for mtime, size, path, deletable in clips:
            if deletable and (mtime < cutoff or total > limit) and self._delete(path):
                total -= size
                result.deleted.append(path.name)
                result.freed_bytes += size
            elif not deletable:
                result.undeletable_bytes += size
        result.total_bytes = total
        result.over_limit = total > limit
        if result.deleted:
            log.info("retention: deleted %d delivered clip(s), %.1f MB freed", len(result.deleted),
                     result.freed_bytes / 2**20)
        if result.over_limit:
            log.warning("retention: clips use %.1f GB > %.1f GB, but %.1f GB are not delivered yet and are kept",
                        total / 2**30, self.max_total_gb, result.undeletable_bytes / 2**30)
        return result

    @staticmethod
    def _delete(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", path.name, exc)
            return False
