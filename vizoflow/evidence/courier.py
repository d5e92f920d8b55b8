"""Delivering evidence: each outbox item uploaded, then reported, one committed step at a time."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from vizoflow.clock import SiteClock
from vizoflow.events import VideoEvidence
from vizoflow.evidence.delivery import (
    HttpClient,
    IncidentReporter,
    LocalCopy,
    PermanentError,
    RetryPolicy,
    TransientError,
    Uploader,
    api_key_from_env,
)
from vizoflow.evidence.outbox import CLIP_WRITTEN, LOCAL, REPORTED, UNKNOWN_REMOTE, UPLOADED, Item, Outbox
from vizoflow.evidence.retention import Retention

log = logging.getLogger(__name__)


def incident_id_for(item: Item, clock: SiteClock | None = None) -> str:
    """``incident_{YYYYmmdd_HHMMSS}_{n}``: the incident id form in the site's local time (UTC without a
    clock), dated from the event start, unique thanks to the outbox row id.

    Raises:
        PermanentError: the event's start is missing, not an ISO time or without a time
            zone; the item is parked as failed with that reason rather than dated now.
    """
    start = item.event.get("start")
    try:
        when = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise PermanentError(f"event {item.event_id}: start {start!r} is not an ISO time with a time zone, "
                             f"so its incident cannot be dated")
    return f"incident_{(clock or SiteClock()).stamp(when.timestamp())}_{item.id}"


def incident_payload(item: Item, site: str, camera: str | None, timezone: str = "UTC") -> dict[str, Any]:
    """The incident JSON sent to the incident API (docs/evidence.md, "Incident payload")."""
    event = item.event
    evidence = VideoEvidence(segment_filename=Path(item.segment_path).name,
                             uploaded_filename=item.uploaded_filename or "", video_url=item.video_url or "",
                             incident_id=item.incident_id or "", upload_timestamp=item.upload_timestamp or "")
    boxes = [{"track_id": tid, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
             for tid, b in zip(event["track_ids"], event["boxes"])]
    payload: dict[str, Any] = {
        "incident_id": item.incident_id,
        "site": site,
        "camera": camera or event["camera"],  # a site's shared courier: the event's own camera
        "video": event["camera"],
        "event_type": event["kind"],
        "event_id": event["event_id"],
        "segment_part": item.part,
        "start_time": event["start"],  # ISO with the local offset of the site's time zone
        "timezone": timezone,
        "end_time": event["end"],
        "duration_seconds": event["duration"],
        "track_ids": event["track_ids"],
        "bounding_boxes": boxes,
        "confidence": round(100 * float(event["confidence"]), 1),
        "details": event.get("details", {}),
        "video_evidence": evidence.to_dict(),
    }
    if event["kind"] == "unattended":
        payload["waiting_time_seconds"] = event["details"].get("waiting_time", event["duration"])
    return payload


class Courier:
    """Moves outbox items one step at a time: clip_written -> uploaded -> reported.

    Every step is committed to the outbox before the next starts, so a crash repeats
    at most the step under way. Linking into ``analytics_metrics.json`` is the metrics
    sink's job (it owns that file).

    Steps are per endpoint: an item is uploaded unless it is already stored at this
    courier's upload destination (any earlier upload will do when this courier keeps
    evidence local: a server copy beats a local file), and reported unless this
    incident endpoint already has it. So an item a re-run adopted goes only to the
    endpoints that are new to it, keeping its incident id; see ``docs/evidence_reruns.md``.

    Args:
        outbox: The outbox.
        uploader: Uploader, or :class:`LocalCopy` when there is no upload URL.
        reporter: Incident reporter.
        site: Site name in incident payloads.
        camera: Camera name in incident payloads (None: each event's own camera, for a site's shared courier).
        clock: The site's clock: incident ids are dated in its local time.
        retry_base: First delay before an item that failed all its attempts is tried again.
        retry_cap: Longest such delay (an API down for an hour is tried every ``retry_cap``).
        client: The HTTP session behind ``uploader`` and ``reporter`` (closed by :meth:`close`).
    """

    def __init__(self, outbox: Outbox, uploader: Uploader | LocalCopy, reporter: IncidentReporter, site: str,
                 camera: str | None, clock: SiteClock | None = None, retry_base: float = 5.0, retry_cap: float = 300.0,
                 client: HttpClient | None = None) -> None:
        self.outbox, self.uploader, self.reporter, self.site, self.camera = outbox, uploader, reporter, site, camera
        self.client = client  # the HTTP session of uploader and reporter, closed with the courier
        self.clock = clock or SiteClock()
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.busy_since: float | None = None  # monotonic start of the step under way (status: slow consumer)

    def drain(self, stop: threading.Event | None = None) -> int:
        """Try every due item once; returns how many moved forward."""
        moved = 0
        for item in self.outbox.due((CLIP_WRITTEN, UPLOADED)):
            if stop is not None and stop.is_set():
                break
            self.busy_since = time.monotonic()
            try:
                moved += self._step(item)
            finally:
                self.busy_since = None
        return moved

    def close(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        if self.client is not None:
            self.client.close()

    def needs_upload(self, item: Item) -> bool:
        """Whether ``item``'s clip still has to go to this courier's upload destination."""
        if item.uploaded_to is None:
            return True
        if self.uploader.destination == LOCAL:
            return False
        return item.uploaded_to not in (self.uploader.destination, UNKNOWN_REMOTE)

    def needs_report(self, item: Item) -> bool:
        """Whether this courier's incident endpoint has not had ``item``'s incident yet."""
        where = self.reporter.destination
        return where not in item.reported_to and not (where != LOCAL and UNKNOWN_REMOTE in item.reported_to)

    def _step(self, item: Item) -> int:
        try:
            if self.needs_upload(item):
                clip = Path(item.segment_path)
                if item.uploaded_remotely and not clip.is_file():
                    log.warning("%s is no longer on disk (deleted after its upload to %s) and cannot go to %s; "
                                "%s keeps the earlier upload", clip.name, item.uploaded_to, self.uploader.destination,
                                item.incident_id)
                else:
                    stored = self.uploader.upload(clip)
                    self.outbox.uploaded(item.id, self.uploader.destination, stored.uploaded_filename, stored.video_url,
                                         stored.upload_timestamp, item.incident_id or incident_id_for(item, self.clock))
                    log.info("uploaded %s as %s", clip.name, stored.uploaded_filename)
                    item = self.outbox.get(item.id)
            if self.needs_report(item):
                self.reporter.report(incident_payload(item, self.site, self.camera, self.clock.name))
                self.outbox.reported(item.id, self.reporter.destination)
                log.info("incident %s reported (%s %s)", item.incident_id, item.kind, item.event_id)
            else:
                self.outbox.advance(item.id, REPORTED)
                where = self.reporter.destination
                log.info("incident %s was already reported to %s; not reported again", item.incident_id,
                         "incidents.jsonl" if where == LOCAL else where)
            return 1
        except PermanentError as exc:
            log.error("evidence %s parked as failed: %s", item.event_id, exc)
            self.outbox.fail(item.id, str(exc))
        except TransientError as exc:
            delay = min(self.retry_base * 2 ** item.attempts, self.retry_cap)
            log.warning("evidence %s not delivered, next try in %.0f s: %s", item.event_id, delay, exc)
            self.outbox.retry_later(item.id, str(exc), delay)
        return 0


def build_courier(outbox: Outbox, site: str, camera: str | None, upload_url: str | None, incident_url: str | None,
                  video_url_template: str, local_dir: Path, attempts: int = 3, backoff: float = 1.0,
                  timeout_base: float = 10.0, timeout_per_mb: float = 5.0, clock: SiteClock | None = None) -> Courier:
    """A courier for the configured endpoints (local evidence where a URL is missing)."""
    clock = clock or SiteClock()
    client = HttpClient(api_key_from_env(), RetryPolicy(attempts=attempts, backoff=backoff))
    uploader = (Uploader(client, upload_url, video_url_template, timeout_base=timeout_base, timeout_per_mb=timeout_per_mb,
                         clock=clock) if upload_url else LocalCopy(clock))
    reporter = IncidentReporter(client if incident_url else None, incident_url, local_dir / "incidents.jsonl")
    return Courier(outbox, uploader, reporter, site, camera, clock, client=client)


class DeliveryWorker:
    """A thread that drains the outbox while the pipeline runs, and sweeps old clips.

    Args:
        courier: Moves the items.
        retention: Deletes delivered clips past the limits (None: keeps every clip).
        retention_interval: Seconds between retention sweeps.
        poll_seconds: How often the worker looks for due items.
        drain_seconds: At :meth:`finish`, how long to keep delivering before leaving the rest for next time.
    """

    def __init__(self, courier: Courier, retention: Retention | None, retention_interval: float = 300.0,
                 poll_seconds: float = 1.0, drain_seconds: float = 30.0) -> None:
        self.courier, self.retention, self.retention_interval = courier, retention, retention_interval
        self.poll_seconds, self.drain_seconds = poll_seconds, drain_seconds
        self._swept = float("-inf")
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, name="vizoflow-evidence", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self.courier.drain(self._stop)
                if self.retention is not None and time.monotonic() - self._swept >= self.retention_interval:
                    self._swept = time.monotonic()
                    self.retention.sweep()
            except Exception:  # the worker must outlive one bad item
                log.exception("evidence worker error")
            self._stop.wait(self.poll_seconds)

    def status(self) -> dict[str, float]:
        """Backlog numbers: a growing backlog with a healthy camera means a slow consumer (the API)."""
        counts = self.courier.outbox.counts()
        busy = self.courier.busy_since
        return {"evidence_pending": counts[CLIP_WRITTEN] + counts[UPLOADED], "evidence_failed": counts["failed"],
                "evidence_busy_seconds": time.monotonic() - busy if busy is not None else 0.0}

    def finish(self) -> None:
        """Stop the worker, then deliver what is due for up to ``drain_seconds`` (once)."""
        if self._finished:
            return
        self._finished = True
        self._stop.set()
        self._thread.join()
        last = threading.Event()
        finisher = threading.Thread(target=self.courier.drain, args=(last,), name="vizoflow-evidence-final",
                                    daemon=True)
        finisher.start()
        finisher.join(self.drain_seconds)
        if finisher.is_alive():
            log.warning("evidence still being delivered after %.0f s; the rest stays in the outbox", self.drain_seconds)
            last.set()  # no new item; the step under way (bounded by its HTTP timeouts) is let finish and recorded
            finisher.join()
        counts = self.courier.outbox.counts()
        pending = counts[CLIP_WRITTEN] + counts[UPLOADED]
        if pending:
            log.warning("%d evidence item(s) pending in %s; they are delivered on the next run "
                        "(or python -m vizoflow mode=outbox)", pending, self.courier.outbox.path)
