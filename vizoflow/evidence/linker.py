"""Linking delivered evidence into the analytics files its events were written to."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vizoflow.events import VideoEvidence
from vizoflow.evidence.outbox import FAILED, LINK_DONE, LINK_GONE, LINK_PENDING, LINKED, REPORTED, Item, Outbox
from vizoflow.files import absolute

if TYPE_CHECKING:
    from vizoflow.analytics.dayfile import AnalyticsFile

log = logging.getLogger(__name__)


class EvidenceLinker:
    """Links reported evidence into every metrics file its event was written to.

    Links delivered clips into the analytics files. An outbox item lists its metrics
    files (one per run that saw the event: a re-run adopts the earlier clip and adds
    its own file), so evidence delivered after a restart lands in that run's file, and
    a re-run's file gets the evidence an earlier run delivered. An item is ``linked``
    once no listed file is pending.

    The running pipeline's own file is written only through ``collector`` (its entry
    may appear later: an event is written when it ends); another run's file is opened
    for the moment, and if it or its entry is gone, that link is given up with a warning
    (``gone``) instead of being tried forever.

    Args:
        outbox: The evidence outbox.
        collector: The collector of the running pipeline.
    """

    def __init__(self, outbox: Outbox, collector: AnalyticsFile) -> None:
        self.outbox, self.collector = outbox, collector
        self._own = str(absolute(collector.path))

    def link(self) -> int:
        """Link every reported item into the files it is pending in; returns how many became ``linked``."""
        linked = 0
        for item in self.outbox.due((REPORTED,), now=float("inf")):
            pending = item.pending_links() if item.links else [self._own]  # rows recorded without a metrics file
            if item.part > 1:  # continuation clips are reported; the entry links the clip with the start
                statuses = dict.fromkeys(pending, LINK_DONE)
            else:
                evidence = VideoEvidence(Path(item.segment_path).name, item.uploaded_filename or "",
                                         item.video_url or "", item.incident_id or "", item.upload_timestamp or "")
                statuses = {path: status for path in pending if (status := self._link_one(item, path, evidence))}
            if (pending and not statuses) or not self.outbox.set_links(item.id, statuses, item.video_url):
                continue  # nothing decided yet, or adopted again meanwhile (the next pass links that)
            if item.part == 1 and LINK_DONE in statuses.values():
                log.info("linked %s to %s in %s", item.incident_id, item.event_id,
                         ", ".join(Path(p).name for p, s in statuses.items() if s == LINK_DONE))
            linked += self.outbox.get(item.id).state == LINKED
        return linked

    def _link_one(self, item: Item, path: str, evidence: VideoEvidence) -> str | None:
        """``linked``, ``gone``, or None to try again later (this run's entry is not written yet)."""
        start = item.event.get("start")
        if str(absolute(path)) == self._own:
            found = self.collector.link_video_evidence(item.event_id, item.event["track_ids"], evidence, start)
            return LINK_DONE if found and not self.collector.unsaved else None  # not written yet: try again later
        try:
            collector = type(self.collector)(path, clock=self.collector.clock) if Path(path).parent.is_dir() else None
            if collector is None or not collector.days():
                log.warning("%s: metrics file %s is gone; its evidence is not linked there", item.event_id, path)
                return LINK_GONE
            found = collector.link_video_evidence(item.event_id, item.event["track_ids"], evidence, start)
        except ValueError as exc:
            log.warning("%s: cannot link into %s: %s", item.event_id, path, exc)
            return LINK_GONE
        if found:
            return None if collector.unsaved else LINK_DONE  # a failed write is tried again on the next pass
        log.warning("%s: no such event in %s; its evidence is not linked there", item.event_id, path)
        return LINK_GONE

    def unlinked(self) -> list[Item]:
        """Items this run's file still waits for (every state): the events left without ``video_evidence``."""
        return [item for item in self.outbox.all()
                if item.part == 1 and item.links.get(self._own) == LINK_PENDING]

    def warn_unlinked(self) -> None:
        """Say, per event, why this run's file has no ``video_evidence`` for it (called at close)."""
        for item in self.unlinked():
            reason = (f"delivery failed: {item.last_error}" if item.state == FAILED else
                      "not delivered yet; the next run (or mode=outbox +retry=true) links it" if item.state != REPORTED
                      else "the event is not in the file")
            log.warning("%s has no video_evidence in %s (%s, %s)", item.event_id, Path(self._own).name,
                        item.state, reason)
