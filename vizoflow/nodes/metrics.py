"""Analytics sinks: the interaction log, ``analytics_metrics.json`` (v1.1) and ``events.parquet``."""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from vizoflow import __version__
from vizoflow.events import Event, VideoEvidence, iso
from vizoflow.files import write_json_atomic
from vizoflow.frame import Frame
from vizoflow.nodes.sinks import ParquetTableWriter
from vizoflow.outbox import FAILED, LINK_DONE, LINK_GONE, LINK_PENDING, LINKED, REPORTED, Item, Outbox

log = logging.getLogger(__name__)
METRICS_VERSION = "1.1"

EVENTS_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("kind", pa.string()),
    ("phase", pa.string()),
    ("camera", pa.string()),
    ("start", pa.timestamp("ms", tz="UTC")),
    ("end", pa.timestamp("ms", tz="UTC")),
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
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log_interaction(self, event: Event) -> None:
        """Append one event phase."""
        self._fh.write(json.dumps(event.to_dict(), default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def _record(event: Event) -> tuple[str, str, dict[str, Any]]:
    """Section, list name and entry of ``analytics_metrics.json`` for an ended event."""
    common = {"event_id": event.event_id, "camera": event.camera, "start": iso(event.epoch + event.started_at),
              "end": iso(event.epoch + event.ended_at), "track_ids": list(event.track_ids),
              "confidence": round(event.confidence, 4)}
    if event.kind == "interaction":
        staff_id, customer_id = event.track_ids
        return "interaction_metrics", "interaction_times", {
            "staff_id": staff_id, "customer_id": customer_id,
            "interaction_duration": round(event.duration, 3), **common}
    if event.kind == "unattended":
        return "unattended_metrics", "unattended_events", {
            "customer_id": event.track_ids[0], "waiting_time": round(event.duration, 3), **common}
    return "queue_metrics", "queue_events", {
        "max_length": event.details.get("max_length", len(event.track_ids)),
        "queue_duration": round(event.duration, 3), "waits": event.details.get("waits", {}), **common}


class MetricsCollector:
    """Keeps ``analytics_metrics.json`` in the seed's v1.1 structure, written atomically.

    ``interaction_metrics.interaction_times[]`` holds ``staff_id``, ``customer_id``,
    ``interaction_duration`` and, once delivered, ``video_evidence``; vizoflow adds
    ``unattended_metrics``, ``queue_metrics`` and ``daily_summary``. An existing file is
    loaded and extended, so a restarted live run keeps its history. Thread-safe: the
    evidence worker links clips from another thread.

    A failed write (disk full, I/O error) does not stop the pipeline and loses nothing
    recorded: the data stays in memory (``unsaved`` is True), the error is logged once
    per streak of failures, and the whole file is written again on the next change,
    :meth:`retry` or :meth:`save` (the sink retries every ``link_seconds`` and at close).
    The file on disk keeps its previous complete version meanwhile.

    Args:
        path: The JSON file.
        site: Site name for the metadata.
    """

    def __init__(self, path: str | os.PathLike[str], site: str = "default") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.unsaved = False  # the last write failed: memory holds more than the file
        self.failed_writes = 0  # failed writes in the current streak
        self.data = self._load() or {
            "metadata": {"version": METRICS_VERSION, "site": site, "generator": f"vizoflow {__version__}",
                         "created": iso(datetime.now(timezone.utc).timestamp())},
            "interaction_metrics": {"interaction_times": []},
            "unattended_metrics": {"unattended_events": []},
            "queue_metrics": {"queue_events": []},
            "daily_summary": {},
        }

    def set_start_time_source(self, source: str | dict[str, str]) -> bool:
        """Record in ``metadata.start_time_source`` where the event dates come from
        (``creation_time tag``, ``modification time (guess)``, ``source.start_time``,
        ``wall clock``; per video when they differ); True if the file was written."""
        with self._lock:
            self.data["metadata"]["start_time_source"] = source
            return self._save()

    def _load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            backup = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, backup)
            log.error("%s was unreadable (%s); kept as %s, starting a new one", self.path, exc, backup)
            return None
        if data.get("metadata", {}).get("version") != METRICS_VERSION:
            raise ValueError(f"{self.path} has metadata.version {data.get('metadata', {}).get('version')!r}, "
                             f"expected {METRICS_VERSION!r}")
        return data

    def add_event(self, event: Event) -> None:
        """Record an ended event and save the file."""
        section, name, entry = _record(event)
        with self._lock:
            self.data[section][name].append(entry)
            self._summarize()
            self._save()

    def add_interaction_time(self, event: Event) -> None:
        """The seed's name for :meth:`add_event` on an interaction."""
        self.add_event(event)

    def link_video_evidence(self, event_id: str, track_ids: list[int], evidence: VideoEvidence) -> bool:
        """Attach ``video_evidence`` to the entries of ``event_id`` (same track ids); True if found.

        Every matching entry gets it: footage re-run into the same output folder adds
        the event to the file again, and that entry needs its evidence as well.
        """
        found = False
        with self._lock:
            for section, name in (("interaction_metrics", "interaction_times"),
                                  ("unattended_metrics", "unattended_events"), ("queue_metrics", "queue_events")):
                for entry in self.data[section][name]:
                    if entry.get("event_id") == event_id and entry.get("track_ids") == list(track_ids):
                        entry["video_evidence"] = evidence.to_dict()
                        found = True
            if found:
                self._save()
        return found

    def _summarize(self) -> None:
        days: dict[str, dict[str, list[float]]] = {}

        def bucket(entry: dict[str, Any]) -> dict[str, list[float]]:
            return days.setdefault(entry["start"][:10], {"i": [], "u": [], "q": []})

        for e in self.data["interaction_metrics"]["interaction_times"]:
            bucket(e)["i"].append(e["interaction_duration"])
        for e in self.data["unattended_metrics"]["unattended_events"]:
            bucket(e)["u"].append(e["waiting_time"])
        for e in self.data["queue_metrics"]["queue_events"]:
            bucket(e)["q"].append(e["max_length"])

        def mean(values: list[float]) -> float | None:
            return round(statistics.fmean(values), 3) if values else None

        self.data["daily_summary"] = {day: {
            "interactions": len(v["i"]),
            "mean_interaction_duration": mean(v["i"]),
            "median_interaction_duration": round(statistics.median(v["i"]), 3) if v["i"] else None,
            "unattended": len(v["u"]),
            "mean_unattended_wait": mean(v["u"]),
            "queues": len(v["q"]),
            "max_queue_length": int(max(v["q"])) if v["q"] else None,
        } for day, v in sorted(days.items())}

    def _save(self) -> bool:
        """Write the file; on an ``OSError`` keep the data in memory for the next write. True if written."""
        self.data["metadata"]["updated"] = iso(datetime.now(timezone.utc).timestamp())
        try:
            write_json_atomic(self.path, self.data)
        except OSError as exc:
            if not self.unsaved:  # once per streak
                log.error("could not write %s (%s); its data is kept in memory and written again on the next "
                          "change and at close; analysis goes on", self.path, exc)
            self.unsaved = True
            self.failed_writes += 1
            return False
        if self.unsaved:
            log.warning("%s written again after %d failed write(s); nothing was lost", self.path, self.failed_writes)
        self.unsaved, self.failed_writes = False, 0
        return True

    def save(self) -> bool:
        """Write the file now; True if written (False: kept in memory, see ``unsaved``)."""
        with self._lock:
            return self._save()

    def retry(self) -> bool:
        """Write the file again if an earlier write failed; True if the file is up to date."""
        with self._lock:
            return self._save() if self.unsaved else True


class EventsTable:
    """Every event phase as a flat row of ``events.parquet`` for notebooks."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._table = ParquetTableWriter(path, EVENTS_SCHEMA, row_group=1000)

    def add(self, event: Event) -> None:
        """Append one event phase."""
        interaction = event.kind == "interaction"
        self._table.extend({
            "event_id": [event.event_id], "kind": [event.kind], "phase": [event.phase], "camera": [event.camera],
            "start": [datetime.fromtimestamp(event.epoch + event.started_at, tz=timezone.utc)],
            "end": [datetime.fromtimestamp(event.epoch + event.ended_at, tz=timezone.utc)],
            "started_at": [event.started_at], "duration": [event.duration], "track_ids": [list(event.track_ids)],
            "staff_id": [event.track_ids[0] if interaction else None],
            "customer_id": [event.track_ids[1] if interaction else (event.track_ids[0] if event.kind == "unattended" else None)],
            "confidence": [event.confidence],
            "waiting_time": [event.duration if event.kind == "unattended" else None],
            "max_length": [event.details.get("max_length") if event.kind == "queue" else None],
            "boxes": [json.dumps([list(b) for b in event.boxes])],
            "details": [json.dumps(event.details, default=str)],
        }, 1)

    def close(self) -> None:
        """Publish the table."""
        self._table.close()


class EvidenceLinker:
    """Links reported evidence into every metrics file its event was written to.

    The seed's ``_link_video_evidence_to_analytics``. An outbox item lists its metrics
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

    def __init__(self, outbox: Outbox, collector: MetricsCollector) -> None:
        self.outbox, self.collector = outbox, collector
        self._own = str(collector.path.resolve())

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
        if Path(path).resolve() == Path(self._own):
            found = self.collector.link_video_evidence(item.event_id, item.event["track_ids"], evidence)
            return LINK_DONE if found and not self.collector.unsaved else None  # not written yet: try again later
        if not Path(path).is_file():
            log.warning("%s: metrics file %s is gone; its evidence is not linked there", item.event_id, path)
            return LINK_GONE
        try:
            collector = MetricsCollector(path)
        except ValueError as exc:
            log.warning("%s: cannot link into %s: %s", item.event_id, path, exc)
            return LINK_GONE
        if collector.link_video_evidence(item.event_id, item.event["track_ids"], evidence):
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


class MetricsSink:
    """Node: sends every event on a frame to the log, the metrics file and the events table.

    With an outbox, it also links delivered evidence into the metrics file (every
    ``link_seconds`` of wall time and at close), being the one writer of that file.
    At close, each event still waiting for evidence in this file is logged with the
    reason (delivery failed or pending), so no event silently lacks ``video_evidence``.

    Args:
        metrics_path: ``analytics_metrics.json``.
        log_path: JSON-lines log of every event phase.
        events_path: ``events.parquet``.
        site: Site name for the metadata.
        outbox_path: Evidence outbox to link from (None: no evidence).
        link_seconds: How often to look for newly reported evidence.
    """

    def __init__(self, metrics_path: str, log_path: str, events_path: str, site: str = "default",
                 outbox_path: str | None = None, link_seconds: float = 2.0) -> None:
        self.collector = MetricsCollector(metrics_path, site)
        self.logger = InteractionLogger(log_path)
        self.table = EventsTable(events_path)
        self.collector.save()  # the file exists (maybe empty) from the start of a run
        self.linker = EvidenceLinker(Outbox(outbox_path), self.collector) if outbox_path else None
        self.link_seconds = link_seconds
        self._next_link = 0.0

    def process(self, frame: Frame) -> Frame:
        """Record this frame's events; link evidence now and then."""
        for event in frame.events:
            self.logger.log_interaction(event)
            self.table.add(event)
            if event.phase == "end":
                self.collector.add_event(event)
        if time.monotonic() >= self._next_link:
            self._next_link = time.monotonic() + self.link_seconds
            self.collector.retry()  # a write that failed (disk full) is tried again
            if self.linker is not None:
                self.linker.link()
        return frame

    def status(self) -> dict[str, float]:
        """1 in ``metrics_unsaved`` while ``analytics_metrics.json`` could not be written (data in memory)."""
        return {"metrics_unsaved": float(self.collector.unsaved)}

    def finish(self, frame: Frame) -> Frame:
        """Record the events ended at the end of the stream."""
        return self.process(frame)

    def close(self) -> None:
        """Link what was delivered, then flush and close everything."""
        if self.linker is not None:
            self.linker.link()
            self.linker.warn_unlinked()
            self.linker.outbox.close()
        self.logger.close()
        self.table.close()
        if not self.collector.save():
            log.error("%s could not be written at close: %d failed write(s); the events of this run are in %s",
                      self.collector.path, self.collector.failed_writes, self.logger.path)
