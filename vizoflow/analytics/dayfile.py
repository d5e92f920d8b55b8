"""The v1.1 analytics file, one per local day: ``analytics_metrics_YYYY-MM-DD.json``."""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import threading
from collections import OrderedDict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from vizoflow import __version__
from vizoflow.clock import SiteClock
from vizoflow.events import Event, VideoEvidence
from vizoflow.files import point_link, write_json_atomic

log = logging.getLogger(__name__)
ANALYTICS_VERSION = "1.1"


def _record(event: Event, clock: SiteClock) -> tuple[str, str, dict[str, Any]]:
    """Section, list name and entry of ``analytics_metrics.json`` for an ended event."""
    common = {"event_id": event.event_id, "camera": event.camera, "start": clock.iso(event.epoch + event.started_at),
              "end": clock.iso(event.epoch + event.ended_at), "track_ids": list(event.track_ids),
              "confidence": round(event.confidence, 4)}
    if event.kind == "interaction":
        staff_id, customer_id = event.track_ids
        return "interaction_metrics", "interaction_times", {
            "staff_id": staff_id, "customer_id": customer_id,
            "interaction_duration": round(event.duration, 3),
            "staff_ids": event.details.get("staff_ids", [staff_id]),  # everyone in the service; the main pair above
            "customer_ids": event.details.get("customer_ids", [customer_id]), **common}
    if event.kind == "unattended":
        return "unattended_metrics", "unattended_events", {
            "customer_id": event.track_ids[0], "waiting_time": round(event.duration, 3), **common}
    return "queue_metrics", "queue_events", {
        "max_length": event.details.get("max_length", len(event.track_ids)),
        "queue_duration": round(event.duration, 3), "waits": event.details.get("waits", {}), **common}


SECTIONS = (("interaction_metrics", "interaction_times"), ("unattended_metrics", "unattended_events"),
            ("queue_metrics", "queue_events"))


def _epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time).timestamp()


def day_summary(doc: dict[str, Any], day: str, clock: SiteClock) -> dict[str, Any]:
    """The ``daily_summary`` entry of one day file: counts and means, the day's real length, hourly counts.

    ``hours`` is 23 or 25 on a daylight-saving day; ``hourly`` is keyed by local hour
    with its offset, so the repeated autumn hour is two buckets.
    """
    durations = [e["interaction_duration"] for e in doc["interaction_metrics"]["interaction_times"]]
    waits = [e["waiting_time"] for e in doc["unattended_metrics"]["unattended_events"]]
    lengths = [e["max_length"] for e in doc["queue_metrics"]["queue_events"]]
    hourly: dict[str, dict[str, int]] = {}
    for (section, name), key in zip(SECTIONS, ("interactions", "unattended", "queues")):
        for entry in doc[section][name]:
            bucket = hourly.setdefault(clock.hour(_epoch(entry["start"])),
                                       {"interactions": 0, "unattended": 0, "queues": 0})
            bucket[key] += 1
    first, last = clock.day_bounds(day)

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 3) if values else None

    return {
        "interactions": len(durations),
        "mean_interaction_duration": mean(durations),
        "median_interaction_duration": round(statistics.median(durations), 3) if durations else None,
        "unattended": len(waits),
        "mean_unattended_wait": mean(waits),
        "queues": len(lengths),
        "max_queue_length": int(max(lengths)) if lengths else None,
        "timezone": clock.name,
        "day_start": clock.iso(first),
        "day_end": clock.iso(last),
        "hours": round((last - first) / 3600, 3),
        "hourly": dict(sorted(hourly.items(), key=lambda kv: _epoch(kv[0]))),
    }


class AnalyticsFile:
    """Keeps the v1.1 analytics as one file per local day, each written atomically.

    ``path`` (``analytics_metrics.json``) is a link to the newest day's file,
    ``analytics_metrics_YYYY-MM-DD.json`` beside it. Each day file has the v1.1
    structure: ``interaction_metrics.interaction_times[]`` holds ``staff_id``,
    ``customer_id``, ``interaction_duration`` and, once delivered, ``video_evidence``;
    vizoflow adds ``unattended_metrics``, ``queue_metrics`` and that day's
    ``daily_summary``. An event belongs to the local day (site clock) it started on,
    also when it ends after midnight. Recording an event rewrites only its day's file,
    and only the last ``keep_days`` days are held in memory, so neither the cost of an
    event nor memory grows with the days behind. Existing files are loaded and
    extended, so a restarted live run keeps its history; a single file of an older
    vizoflow at ``path`` is split into day files (kept as ``*.pre-daily.json``).
    Thread-safe (a lock around every change), so a caller on another thread cannot tear
    a day; in the pipeline only the analytics sink's frame loop calls it.

    A failed write (disk full, I/O error) does not stop the pipeline and loses nothing
    recorded: that day stays in memory (``unsaved`` is True) and is not evicted, the
    error is logged once per streak of failures, and the day's whole file is written
    again on the next change, :meth:`retry` or :meth:`save` (the sink retries every
    ``link_seconds`` and at close). The file on disk keeps its previous complete
    version meanwhile.

    Args:
        path: The link to the newest day (``analytics_metrics.json``); day files go beside it.
        site: Site name for the metadata.
        clock: The site's clock (time zone); UTC by default.
        keep_days: Day files held in memory (the current day and the ones before it,
            which late-ending events and evidence still reach).
    """

    def __init__(self, path: str | os.PathLike[str], site: str = "default", clock: SiteClock | None = None,
                 keep_days: int = 3) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock or SiteClock()
        self.site, self.keep_days = site, max(1, keep_days)
        self._lock = threading.Lock()
        self._days: OrderedDict[str, dict[str, Any]] = OrderedDict()  # loaded day files, least recent first
        self._unsaved: set[str] = set()  # days whose last write failed
        self.failed_writes = 0  # failed writes in the current streak
        self._meta: dict[str, Any] = {"timezone": self.clock.name}  # metadata every day file carries
        self._current: tuple[float, float, str] | None = None  # bounds of the day of the last frame
        self._link_failed = False  # warned once that the link cannot be made
        self._day_name = re.compile(re.escape(self.path.stem) + r"_(\d{4}-\d{2}-\d{2})" + re.escape(self.path.suffix))
        self._newest: str | None = None  # the newest day with a file: where the link points
        if self.path.is_file() and not self.path.is_symlink():
            self._migrate()
        written = [d for d in self.days() if self.day_path(d).exists()]
        if written:
            self._newest = max(written)
            self._point_link()

    @property
    def unsaved(self) -> bool:
        """True while some day's last write failed (its data is in memory only)."""
        return bool(self._unsaved)

    def day_path(self, day: str) -> Path:
        """The file of a local day, ``analytics_metrics_YYYY-MM-DD.json``."""
        return self.path.with_name(f"{self.path.stem}_{day}{self.path.suffix}")

    def days(self) -> list[str]:
        """The days that have a file (or data not yet written), oldest first."""
        found = {m.group(1) for p in self.path.parent.iterdir() if (m := self._day_name.fullmatch(p.name))}
        return sorted(found | self._unsaved)

    def open_day(self, epoch: float) -> str:
        """The day of ``epoch``; its file is created when new, and the link points at the newest day.

        The sink calls this for every frame, so a day has its (maybe empty) file from its
        first frame and the link moves at local midnight; cheap while the day lasts.
        """
        if self._current is not None and self._current[0] <= epoch < self._current[1]:
            return self._current[2]
        day = self.clock.day(epoch)
        with self._lock:
            new = day not in self._days and not self.day_path(day).exists()
            self._doc(day)
            if new:
                self._save_day(day)
        self._current = (*self.clock.day_bounds(day), day)
        return day

    def set_start_time_source(self, source: str | dict[str, str]) -> bool:
        """Record in ``metadata.start_time_source`` where the event dates come from
        (``creation_time tag``, ``modification time (guess)``, ``source.start_time``,
        ``wall clock``; per video when they differ); True if every open day file was written."""
        with self._lock:
            self._meta["start_time_source"] = source
            return all([self._save_day(day) for day in list(self._days)])

    def add_event(self, event: Event) -> None:
        """Record an ended event in the file of the day it started, and save that file."""
        section, name, entry = _record(event, self.clock)
        day = self.clock.day(event.epoch + event.started_at)
        with self._lock:
            self._doc(day)[section][name].append(entry)
            self._save_day(day)

    def set_sections(self, day: str, sections: dict[str, Any], camera: str = "") -> None:
        """Replace store-figure sections (``footfall_metrics`` ...) of a day's file, and save it.

        With several cameras each section holds one entry per camera,
        ``{"cameras": {camera: section}}``, and a camera replaces only its own.
        """
        with self._lock:
            doc = self._doc(day)
            if not camera:
                doc.update(sections)
            else:
                for key, value in sections.items():
                    holder = doc.get(key)
                    if not isinstance(holder, dict) or set(holder) != {"cameras"}:
                        holder = doc[key] = {"cameras": {}}
                    holder["cameras"][camera] = value
            self._save_day(day)

    def add_interaction_time(self, event: Event) -> None:
        """The v1.1 format's name for :meth:`add_event` on an interaction."""
        self.add_event(event)

    def link_video_evidence(self, event_id: str, track_ids: list[int], evidence: VideoEvidence,
                            start: str | None = None) -> bool:
        """Attach ``video_evidence`` to the entries of ``event_id`` (holding ``track_ids``); True if found.

        The entry's ids may be more than the clip's: a queue gains people after its first
        clip was cut (at ``max_seconds``, with the ids known then), so its entry, written
        when it ends, lists them all.

        ``start`` (the event's ISO start) names the day file to look in, and the days
        beside it (a run in another time zone wrote it); without it every day is searched.
        Every matching entry of that day gets it: footage re-run into the same output
        folder adds the event to the file again, and that entry needs its evidence as well.
        """
        wanted = set(track_ids)
        with self._lock:
            for day in self._candidate_days(start):
                doc = self._doc(day)
                found = False
                for section, name in SECTIONS:
                    for entry in doc[section][name]:
                        if entry.get("event_id") == event_id and wanted <= set(entry.get("track_ids", ())):
                            entry["video_evidence"] = evidence.to_dict()
                            found = True
                if found:
                    self._save_day(day)
                    return True
        return False

    def _candidate_days(self, start: str | None) -> list[str]:
        known = set(self.days()) | set(self._days)
        if start is None:
            return sorted(known, reverse=True)
        day = date.fromisoformat(self.clock.day(_epoch(start)))
        near = [(day + timedelta(days=d)).isoformat() for d in (0, -1, 1)]
        return [d for d in near if d in known]

    def save(self) -> bool:
        """Write every day held in memory now; True if all written (False: kept in memory, see ``unsaved``)."""
        with self._lock:
            return all([self._save_day(day) for day in list(self._days)])

    def retry(self) -> bool:
        """Write again the days whose earlier write failed; True if every file is up to date."""
        with self._lock:
            return all([self._save_day(day) for day in sorted(self._unsaved)])

    # -- day files (under the lock) -------------------------------------------------------
    def _doc(self, day: str) -> dict[str, Any]:
        doc = self._days.get(day)
        if doc is None:
            doc = self._days[day] = self._load(self.day_path(day)) or self._new(day)
            while len(self._days) > self.keep_days:  # forget the oldest written day (reloaded when needed)
                oldest = next((d for d in self._days if d not in self._unsaved and d != day), None)
                if oldest is None:
                    break
                del self._days[oldest]
        self._days.move_to_end(day)
        return doc

    def _new(self, day: str) -> dict[str, Any]:
        return {
            "metadata": {"version": ANALYTICS_VERSION, "site": self.site, "generator": f"vizoflow {__version__}",
                         "day": day, "created": self.clock.now_iso()},
            "interaction_metrics": {"interaction_times": []},
            "unattended_metrics": {"unattended_events": []},
            "queue_metrics": {"queue_events": []},
            "daily_summary": {},
        }

    def _load(self, path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            backup = path.with_name(path.name + ".unreadable")
            os.replace(path, backup)
            log.error("%s was unreadable (%s); kept as %s, starting a new one", path, exc, backup)
            return None
        if data.get("metadata", {}).get("version") != ANALYTICS_VERSION:
            raise ValueError(f"{path} has metadata.version {data.get('metadata', {}).get('version')!r}, "
                             f"expected {ANALYTICS_VERSION!r}")
        return data

    def _save_day(self, day: str) -> bool:
        """Write one day's file; on an ``OSError`` keep it in memory for the next write. True if written."""
        doc = self._days[day]
        doc["metadata"].update(self._meta, updated=self.clock.now_iso())
        doc["daily_summary"] = {day: day_summary(doc, day, self.clock)}
        try:
            write_json_atomic(self.day_path(day), doc)
        except OSError as exc:
            if not self._unsaved:  # once per streak
                log.error("could not write %s (%s); its data is kept in memory and written again on the next "
                          "change and at close; analysis goes on", self.day_path(day), exc)
            self._unsaved.add(day)
            self.failed_writes += 1
            return False
        self._unsaved.discard(day)
        if self._newest is None or day > self._newest:  # a newer day: the link follows (no folder listing per event)
            self._newest = day
            self._point_link()
        if not self._unsaved and self.failed_writes:
            log.warning("%s written again after %d failed write(s); nothing was lost", self.day_path(day),
                        self.failed_writes)
            self.failed_writes = 0
        return True

    def _point_link(self) -> None:
        """Point ``path`` at the newest day file (a user finds today's figures there)."""
        if self._newest is None:
            return
        target = self.day_path(self._newest).name
        try:
            if self.path.is_symlink() and os.readlink(self.path) == target:
                return
            point_link(self.path, target)
        except OSError as exc:  # e.g. a file system without symlinks: the day files are all there is
            if not self._link_failed:
                log.warning("could not point %s at %s (%s); read the day files %s_YYYY-MM-DD%s", self.path, target,
                            exc, self.path.stem, self.path.suffix)
            self._link_failed = True

    def _migrate(self) -> None:
        """Split a single metrics file of an older vizoflow into day files; keep it as ``*.pre-daily.json``."""
        old = self._load(self.path)
        if self.path.exists():  # kept aside first: the day files' link takes its name
            backup = self.path.with_name(f"{self.path.stem}.pre-daily{self.path.suffix}")
            os.replace(self.path, backup)
            log.warning("%s was a single metrics file of an older vizoflow: split into day files, kept as %s",
                        self.path, backup.name)
        if old is not None:
            self._meta.update({k: v for k, v in old.get("metadata", {}).items() if k == "start_time_source"})
            for section, name in SECTIONS:
                for entry in old.get(section, {}).get(name, []):
                    self._doc(self.clock.day(_epoch(entry["start"])))[section][name].append(entry)
                    self._unsaved.add(self.clock.day(_epoch(entry["start"])))  # held until written below
            for day in sorted(self._unsaved):
                self._save_day(day)
