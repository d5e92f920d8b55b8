"""A run's events as the review page shows them: who, when, how long, its clip and delivery state.

Events come from the run's ``interactions.jsonl`` (every phase, flushed line by line, so a
live run's events show while it runs; the last phase of an event wins). Clips and their
delivery state come from the evidence outbox (``evidence.dir/outbox.sqlite``), opened
read-only: the page never changes what the evidence service owns.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vizoflow.evidence.outbox import CLIP_WRITTEN, FAILED, LINKED, LOCAL, REPORTED, UPLOADED
from vizoflow.review.folders import SafeFolder

log = logging.getLogger(__name__)

# Delivery as a store manager reads it: the outbox's states folded into four words.
DELIVERY = {CLIP_WRITTEN: "pending", UPLOADED: "uploaded", REPORTED: "reported", LINKED: "reported", FAILED: "failed"}


@dataclass
class Delivery:
    """Where an event's evidence is: ``none`` (no clip), ``pending``, ``uploaded``, ``reported``,
    ``local`` (kept on this machine: no upload API set) or ``failed`` (with its reason)."""

    state: str = "none"
    reason: str | None = None
    incident_id: str | None = None


@dataclass
class Alert:
    """One event, as the page and ``GET /api/events`` show it."""

    event_id: str
    kind: str
    camera: str
    start: str
    end: str
    duration: float
    open: bool
    staff_ids: list[int]
    customer_ids: list[int]
    details: dict[str, Any]
    clips: list[str] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)

    @classmethod
    def from_row(cls, row: dict[str, Any], camera: str | None = None) -> Alert:
        """The alert of an event's last logged phase.

        Args:
            row: One ``interactions.jsonl`` line.
            camera: The camera's name to show instead of the row's (a one-camera site's rows name the video).

        Raises:
            ValueError: the row lacks a field the page needs or has one of the wrong type.
        """
        details = row.get("details") or {}
        if not isinstance(details, dict):
            raise ValueError("details is not a mapping")
        start, end = str(row["start"]), str(row.get("end") or row["start"])
        datetime.fromisoformat(start), datetime.fromisoformat(end)  # ValueError names a malformed time
        duration = float(row.get("duration") or 0.0)
        if not math.isfinite(duration):
            raise ValueError(f"duration {duration}")
        if row.get("kind") == "interaction":
            staff, customers = _ids(details.get("staff_ids")), _ids(details.get("customer_ids"))
        else:  # unattended: the customer; queue: the people waiting
            staff, customers = [], _ids(row.get("track_ids"))
        return cls(event_id=str(row["event_id"]), kind=str(row.get("kind")), camera=camera or str(row.get("camera")),
                   start=start, end=end, duration=round(duration, 1), open=row.get("phase") != "end",
                   staff_ids=staff, customer_ids=customers, details=details)

    @property
    def day(self) -> str:
        """The local day of its start (ISO times carry the site's offset)."""
        return self.start[:10]

    def to_json(self, base: str = "") -> dict[str, Any]:
        """The API's view; ``clip_url`` is the first clip's (an event over 120 s has more parts)."""
        data = asdict(self)
        data["clip_urls"] = [f"{base}/clips/{name}" for name in self.clips]
        data["clip_url"] = data["clip_urls"][0] if self.clips else None
        data["thumbnail_url"] = f"{base}/thumbnails/{self.clips[0]}" if self.clips else None
        del data["clips"]
        return data


def _ids(value: Any) -> list[int]:
    """Person ids of a row; ValueError unless a list of whole numbers."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"ids {value!r} are not a list")
    return [int(v) for v in value]


def read_events(log_path: Path) -> dict[str, dict[str, Any]]:
    """The last phase of every event in an ``interactions.jsonl``; a torn last line is skipped."""
    events: dict[str, dict[str, Any]] = {}
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    row = json.loads(line)
                    events[str(row["event_id"])] = row
                except (ValueError, KeyError, TypeError, IndexError):  # a line being written, or damaged: the rest shows
                    log.debug("%s:%d: not an event line", log_path, number)
    except OSError as exc:  # not readable: the page shows the other logs' events
        log.warning("cannot read %s: %s", log_path, exc)
    return events


class OutboxReader:
    """The evidence outbox, read-only: each event's clips and delivery state.

    Args:
        path: ``outbox.sqlite``; a missing file means no evidence yet.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Outbox rows by event id, parts in order."""
        if not self.path.is_file():
            return {}
        try:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, timeout=2.0)
        except sqlite3.Error as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return {}
        try:
            db.row_factory = sqlite3.Row
            found: dict[str, list[dict[str, Any]]] = {}
            for row in db.execute("SELECT event_id, part, segment_path, state, incident_id, last_error, uploaded_to "
                                  "FROM evidence ORDER BY event_id, part"):
                found.setdefault(row["event_id"], []).append(dict(row))
            return found
        except sqlite3.Error as exc:  # locked for longer than the timeout, or not an outbox
            log.warning("cannot read %s: %s", self.path, exc)
            return {}
        finally:
            db.close()


def delivery_of(parts: list[dict[str, Any]]) -> Delivery:
    """One state for an event's clips: the least advanced part, a failure first."""
    if not parts:
        return Delivery()
    failed = next((p for p in parts if p["state"] == FAILED), None)
    if failed is not None:
        return Delivery("failed", failed["last_error"] or "delivery failed", failed["incident_id"])
    order = list(DELIVERY)
    least = min(parts, key=lambda p: order.index(p["state"]) if p["state"] in order else 0)
    state = DELIVERY.get(least["state"], "pending")
    if state == "reported" and least["uploaded_to"] == LOCAL:
        state = "local"
    return Delivery(state, None, least["incident_id"])


class AlertBook:
    """A run's alerts joined with the site's evidence.

    Args:
        run_dir: The run's folder (``interactions.jsonl``).
        outbox: The site's evidence outbox.
        camera: The camera's name on a one-camera site, whose events name their video instead.
    """

    def __init__(self, run_dir: Path, outbox: OutboxReader, camera: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.outbox = outbox
        self.camera = camera

    def logs(self) -> list[Path]:
        """The run's event logs: its own, or, for a batch (``batch.json``), each video's (symlinks out are not followed)."""
        run = SafeFolder(self.run_dir)
        own = run.file("interactions.jsonl")
        if own is not None or run.file("batch.json") is None:
            return [own] if own is not None else []
        videos = (run.folder(p.name) for p in sorted(self.run_dir.iterdir()))
        return [log for v in videos if v is not None and (log := SafeFolder(v).file("interactions.jsonl"))]

    def alerts(self) -> list[Alert]:
        """Every event of the run, newest first."""
        evidence = self.outbox.rows()
        rows = {}
        for log_path in self.logs():
            rows.update(read_events(log_path))
        alerts = []
        for event_id, row in rows.items():
            try:
                alert = Alert.from_row(row, self.camera)
            except (ValueError, KeyError, TypeError) as exc:  # one damaged line never hides the other events
                log.warning("event %s in %s cannot be shown: %s", event_id, self.run_dir, exc)
                continue
            parts = evidence.get(event_id, [])
            alert.clips = [Path(p["segment_path"]).name for p in parts]
            alert.delivery = delivery_of(parts)
            alerts.append(alert)
        return sorted(alerts, key=lambda a: (a.start, a.event_id), reverse=True)
