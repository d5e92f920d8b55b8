"""The analytics sink: every event into the interaction log, the v1.1 analytics file and ``events.parquet``."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.clock import SiteClock
from vizoflow.events import Event
from vizoflow.frame import Frame
from vizoflow.nodes.sinks import ParquetTableWriter

if TYPE_CHECKING:
    from vizoflow.evidence import Evidence

log = logging.getLogger(__name__)


def events_schema(timezone: str = "UTC") -> pa.Schema:
    """``events.parquet``: start and end are instants shown in the site's time zone."""
    return pa.schema([
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("phase", pa.string()),
        ("camera", pa.string()),
        ("start", pa.timestamp("ms", tz=timezone)),
        ("end", pa.timestamp("ms", tz=timezone)),
        ("started_at", pa.float64()),
        ("duration", pa.float64()),
        ("track_ids", pa.list_(pa.int64())),
        ("staff_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("confidence", pa.float64()),
        ("waiting_time", pa.float64()),
        ("max_length", pa.int64()),
        ("boxes", pa.string()),
        ("details", pa.string()),
    ])


class InteractionLogger:
    """Append-only JSON-lines log of every event phase, flushed line by line.

    Args:
        path: Log file; appended to across restarts.
        clock: The site's clock: times are local ISO with their offset.
    """

    def __init__(self, path: str | os.PathLike[str], clock: SiteClock | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or SiteClock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log_interaction(self, event: Event) -> None:
        """Append one event phase."""
        self._fh.write(json.dumps(event.to_dict(self.clock), default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class EventsTable:
    """Every event phase as a flat row of ``events.parquet`` for notebooks."""

    def __init__(self, path: str | os.PathLike[str], timezone: str = "UTC") -> None:
        self._table = ParquetTableWriter(path, events_schema(timezone), row_group=1000)

    def add(self, event: Event) -> None:
        """Append one event phase."""
        interaction = event.kind == "interaction"
        self._table.extend({
            "event_id": [event.event_id], "kind": [event.kind], "phase": [event.phase], "camera": [event.camera],
            "start": [round(1000 * (event.epoch + event.started_at))],  # ms since the epoch: the exact instant
            "end": [round(1000 * (event.epoch + event.ended_at))],
            "started_at": [event.started_at], "duration": [event.duration], "track_ids": [list(event.track_ids)],
            "staff_id": [event.track_ids[0] if interaction else None],
            "customer_id": [event.track_ids[1] if interaction else (event.track_ids[0] if event.kind == "unattended" else None)],
            "confidence": [event.confidence],
            "waiting_time": [event.duration if event.kind == "unattended" else None],
            "max_length": [event.details.get("max_length") if event.kind == "queue" else None],
            "boxes": [json.dumps([list(b) for b in event.boxes])],
            "details": [json.dumps(event.details, default=str)],
        }, 1)

    def tick(self) -> None:
        """Let the rows or part that are due go (every frame; see :meth:`ParquetTableWriter.tick`)."""
        self._table.tick()

    def close(self) -> None:
        """Publish the table."""
        self._table.close()


class AnalyticsSink:
    """Node: sends every event on a frame to the log, the metrics file and the events table.

    With the evidence service, it also links delivered evidence into the metrics file
    (every ``link_seconds`` of wall time and at close), being the one writer of that file.
    At close, each event still waiting for evidence in this file is logged with the
    reason (delivery failed or pending), so no event silently lacks ``video_evidence``.

    Args:
        metrics_path: ``analytics_metrics.json``.
        log_path: JSON-lines log of every event phase.
        events_path: ``events.parquet``.
        site: Site name for the metadata.
        evidence: The site's evidence service (graph entry ``uses: [evidence]``); None: no evidence.
        link_seconds: How often to look for newly reported evidence.
        timezone: The site's IANA time zone: day files, hour buckets, ISO times.
    """

    def __init__(self, metrics_path: str, log_path: str, events_path: str, site: str = "default",
                 evidence: Evidence | None = None, link_seconds: float = 2.0, timezone: str = "UTC") -> None:
        clock = SiteClock(timezone)
        self.collector = AnalyticsFile(metrics_path, site, clock)
        self.logger = InteractionLogger(log_path, clock)
        self.table = EventsTable(events_path, timezone)
        self.evidence = evidence
        self.linker = evidence.linker(self.collector) if evidence is not None else None
        self.link_seconds = link_seconds
        self._next_link = 0.0

    def process(self, frame: Frame) -> Frame:
        """Record this frame's events; link evidence now and then."""
        self.collector.open_day(frame.epoch + frame.timestamp)  # a day has its file from its first frame
        for event in frame.events:
            self.logger.log_interaction(event)
            self.table.add(event)
            if event.phase == "end":
                self.collector.add_event(event)
        self.table.tick()
        for day, sections in frame.figures.items():
            self.collector.set_sections(day, sections, frame.camera)
        if time.monotonic() >= self._next_link:
            self._next_link = time.monotonic() + self.link_seconds
            self.collector.retry()  # a write that failed (disk full) is tried again
            if self.linker is not None:
                self.linker.link()
        return frame

    def status(self) -> dict[str, float]:
        """1 in ``analytics_unsaved`` while a day file could not be written (its data is in memory)."""
        return {"analytics_unsaved": float(self.collector.unsaved)}

    def finish(self, frame: Frame) -> Frame:
        """Record the events ended at the end of the stream."""
        return self.process(frame)

    def close(self) -> None:
        """Link what was delivered, then flush and close everything (the analytics also when evidence fails)."""
        try:
            if self.evidence is not None and self.linker is not None:
                self.evidence.finish_delivery()  # the clips finished and the last delivery made, so it lands here
                self.linker.link()
                self.linker.warn_unlinked()
        except Exception:  # e.g. the outbox on a full disk: the events must still be written
            log.exception("evidence could not be linked at close; it is linked on the next run")
        finally:
            self.logger.close()
            self.table.close()
            if not self.collector.save():
                log.error("%s could not be written at close: %d failed write(s); the events of this run are in %s",
                          self.collector.path, self.collector.failed_writes, self.logger.path)
