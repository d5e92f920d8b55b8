"""VideoSegmenter: event clips with pre-roll, written off the frame loop.

Frames go to a worker thread through a bounded queue. The worker keeps the last
``buffer_seconds`` as JPEG (about 20x smaller than raw BGR) so a clip can begin
``pre_roll`` seconds before the event *started*, which is ``min_seconds`` earlier than
the moment the rule could say so. Buffered frames are re-encoded, so the first frame
of a clip is exactly the first buffered frame at or after ``start - pre_roll``; no
waiting for a keyframe.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import shutil
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vizoflow.clock import SiteClock
from vizoflow.errors import ConfigError
from vizoflow.events import Event
from vizoflow.files import absolute, write_json_atomic
from vizoflow.frame import Frame
from vizoflow.outbox import ADOPTED, REPLACED, Item, Outbox, has_evidence
from vizoflow.video import H264Writer

log = logging.getLogger(__name__)
SEGMENT_NAME = re.compile(r"^segment_(\d+)_")
NOTE_SUFFIX = ".unrecorded.json"  # beside a clip whose outbox recording failed: what to record


@dataclass
class _Clip:
    writer: H264Writer | None  # None: an earlier run's clip of this part is adopted, nothing is written
    event: Event | None
    part: int
    first_t: float
    last_t: float = -1.0
    until: float | None = None  # clip ends at this clock time (event end + post-roll)
    frames: int = 0
    events: list[Event] = field(default_factory=list)  # time mode: events started in the segment
    adopted: Item | None = None  # the earlier run's outbox row this run links instead of a new clip


class VideoSegmenter:
    """Cut H.264 clips around events (or back-to-back) into ``directory``.

    Each finished clip is recorded in the outbox (state ``clip_written``) for upload.

    Re-running footage meets event ids the outbox already has (ids come from the video
    clock). When a part is about to start and the outbox has a row for it whose
    evidence still exists (the clip file, or its upload on a server), no clip is
    written: the row is *adopted* when the part would have been finished, i.e. this
    run's metrics file is added to it and it is made due for delivery to endpoints it
    has not reached yet. A row whose clip is gone and was never on a server gets the
    newly written clip instead. So every clip in ``directory`` is owned by a row, and
    every event of this run gets evidence (``docs/evidence_reruns.md``). An event with
    no clip at all (disk low, write error) is logged with its id.

    A database error while recording a finished clip (disk full, I/O error, locked)
    does not stop analysis and does not lose the clip: the clip stays on disk, the
    error is logged, the recording is kept in memory and retried every
    ``RECORD_RETRY_SECONDS`` on the following frames and once more at close
    (``clips_unrecorded`` in :meth:`status` counts those waiting). The recording is
    also noted beside the clip (``<clip>.unrecorded.json``, when the disk allows), so
    a clip still unrecorded at close, or when the process is killed, is recorded by
    the next segmenter on the same folder when it starts; the note goes once recorded.

    Args:
        directory: Where clips go (``segments/``).
        outbox_path: SQLite outbox; None keeps clips local and unrecorded.
        metrics_path: The run's ``analytics_metrics.json``, where the evidence is linked later.
        mode: ``event`` (a clip per event) or ``time`` (back-to-back ``max_seconds``
            segments; those in which an event started are recorded for upload).
        pre_roll: Seconds before the event start.
        post_roll: Seconds after the event end.
        max_seconds: Longest clip; a longer event continues in the next part.
        buffer_seconds: History kept for pre-roll; must cover ``pre_roll`` plus the
            longest rule ``min_seconds``.
        fps: Nominal frame rate of clips.
        jpeg_quality: Quality of buffered frames.
        queue_size: Frames waiting for the worker before the frame loop waits.
        min_free_mb: Below this much free space in ``directory`` no new clip is started
            (analysis goes on; the status line and health check say so).
        timezone: The site's IANA time zone. Clip names carry the local wall time
            (``segment_000042_20261129_135010_…``); the zero-padded counter before it keeps
            names unique and in recording order, also through the repeated autumn hour.
    """

    needs_video = True  # cuts clips from pixels: left out when replaying the track cache

    DISK_CHECK_SECONDS = 5.0  # free space is re-read at most this often
    RECORD_RETRY_SECONDS = 2.0  # an outbox recording that failed is tried again at most this often

    def __init__(self, directory: str, outbox_path: str | None = None, metrics_path: str | None = None, mode: str = "event",
                 pre_roll: float = 10.0, post_roll: float = 5.0, max_seconds: float = 120.0, buffer_seconds: float = 45.0,
                 fps: float = 25.0, jpeg_quality: int = 90, queue_size: int = 64, min_free_mb: float = 1024.0,
                 timezone: str = "UTC") -> None:
        if mode not in ("event", "time"):
            raise ConfigError(f"segment.mode must be 'event' or 'time', got {mode!r}")
        if max_seconds <= 0 or pre_roll < 0 or post_roll < 0 or buffer_seconds < pre_roll:
            raise ConfigError("segment: need max_seconds > 0, pre_roll >= 0, post_roll >= 0, buffer_seconds >= pre_roll")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(outbox_path) if outbox_path else None
        self.metrics_path = str(absolute(metrics_path)) if metrics_path else None
        self.clock = SiteClock(timezone)
        self.mode, self.pre_roll, self.post_roll, self.max_seconds = mode, pre_roll, post_roll, max_seconds
        self.buffer_seconds, self.fps, self.jpeg_quality = buffer_seconds, fps, jpeg_quality
        self.written: list[Path] = []
        self.adopted: list[tuple[str, int]] = []  # (event_id, part) linked to an earlier run's clip
        # numbers go on from the folder and from the outbox, so a name is never used twice
        # (retention may have deleted the clip with the highest number)
        known = [p.name for p in self.directory.glob("segment_*.mp4")]
        known += [Path(item.segment_path).name for item in self.outbox.all()] if self.outbox is not None else []
        self._counter = max((int(m.group(1)) for name in known if (m := SEGMENT_NAME.match(name))), default=0)
        self._record_noted()
        self._queue: queue.Queue[tuple] = queue.Queue(maxsize=queue_size)
        self._ring: deque[tuple[float, bytes]] = deque()
        self._clips: dict[str, _Clip] = {}
        self._video: str | None = None
        self._camera = ""
        self._epoch = 0.0
        self._error: BaseException | None = None
        self.min_free_mb = min_free_mb
        self._free_mb, self._free_checked = float("inf"), float("-inf")
        self.disk_low = False
        self.skipped = 0  # clips not started because the disk was low, or abandoned on a write error
        # outbox steps that failed on a database error (disk full, I/O error): (what, retry), oldest first
        self._unrecorded: list[tuple[str, Callable[[], None], Path | None]] = []  # (what, retry, note)
        self._record_retry_at = float("-inf")
        self._thread = threading.Thread(target=self._work, name="vizoflow-segmenter", daemon=True)
        self._thread.start()

    # -- frame loop side -------------------------------------------------------------
    def process(self, frame: Frame) -> Frame:
        """Hand the frame and its events to the worker (blocks only if it is far behind)."""
        if self._error is not None:
            raise RuntimeError(f"segment writer failed: {self._error}") from self._error
        self._camera = frame.camera  # several cameras share evidence.dir: clip names carry the camera
        self._queue.put(("frame", frame.video, frame.timestamp, frame.epoch, frame.image))
        for event in frame.events:
            self._queue.put(("event", event))
        return frame

    def finish(self, frame: Frame) -> Frame:
        """End of stream: the final events, then close every open clip."""
        for event in frame.events:
            self._queue.put(("event", event))
        self._queue.put(("flush",))
        return frame

    def close(self) -> None:
        """Finish writing and stop the worker."""
        if self._thread.is_alive():
            self._queue.put(("flush",))
            self._queue.put(("stop",))
            self._thread.join()
        if self.outbox is not None:
            self.outbox.close()

    def status(self) -> dict[str, float]:
        """Clip-side numbers for the live status line and health check."""
        return {"clips_open": len(self._clips), "clips_written": len(self.written), "clips_skipped": self.skipped,
                "segment_queue": self._queue.qsize(), "disk_low": float(self.disk_low),
                "clips_unrecorded": len(self._unrecorded),
                "disk_free_mb": self._free_mb if self._free_mb != float("inf") else -1.0}

    # -- worker side -------------------------------------------------------------------
    def _disk_ok(self) -> bool:
        now = time.monotonic()
        if now - self._free_checked >= self.DISK_CHECK_SECONDS:
            self._free_checked = now
            self._free_mb = shutil.disk_usage(self.directory).free / 2**20
            low = self._free_mb < self.min_free_mb
            if low != self.disk_low:
                if low:
                    log.error("DISK LOW: %.0f MB free in %s (< %.0f MB): not writing new clips; analysis goes on",
                              self._free_mb, self.directory, self.min_free_mb)
                else:
                    log.warning("disk space back (%.0f MB free): writing clips again", self._free_mb)
                self.disk_low = low
        return not self.disk_low

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message[0] == "stop":
                    self._retry_records(force=True, last=True)
                    return
                if message[0] == "frame":
                    self._on_frame(*message[1:])
                    self._retry_records()
                elif message[0] == "event":
                    self._on_event(message[1])
                else:
                    self._close_all()
                    self._retry_records(force=True)
            except sqlite3.Error as exc:  # the outbox cannot be read or written: clips go on, recordings wait
                log.error("segment: outbox error (%s); analysis goes on", exc)
            except OSError as exc:  # disk full, file system gone: lose the clips, not the pipeline
                log.error("segment write failed, open clips abandoned (%s): %s",
                          ", ".join(k for k, c in self._clips.items() if c.writer is not None) or "none", exc)
                self._abandon_all()
            except Exception as exc:  # reported to the frame loop
                log.exception("segment writer failed")
                self._error = exc

    def _on_frame(self, video: str, t: float, epoch: float, image: np.ndarray) -> None:
        if video != self._video:
            self._close_all()
            self._ring.clear()
            self._video, self._epoch = video, epoch
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if ok:
            self._ring.append((t, jpeg.tobytes()))
        while self._ring and t - self._ring[0][0] > self.buffer_seconds:
            self._ring.popleft()
        if self.mode == "time" and not self._clips:
            self._open("time", None, t, part=1, image_t=t, image=image)
            return
        for key, clip in list(self._clips.items()):
            if clip.until is not None and t > clip.until:
                self._finalize(key)
                continue
            if t - clip.first_t >= self.max_seconds:
                self._finalize(key)
                if clip.event is not None and clip.until is None or self.mode == "time":
                    self._open(key, clip.event, t, part=clip.part + 1, image_t=t, image=image)
                continue
            self._write(clip, t, image)

    def _on_event(self, event: Event) -> None:
        if self.mode == "time":
            clip = next(iter(self._clips.values()), None)
            if clip is not None and event.phase == "start":
                clip.events.append(event)
            return
        clip = self._clips.get(event.event_id)
        if event.phase == "start" and clip is None:
            begin = event.started_at - self.pre_roll
            self._open(event.event_id, event, begin, part=1)
        elif clip is not None:
            clip.event = event
            if event.phase == "end":
                clip.until = event.ended_at + self.post_roll

    def _open(self, key: str, event: Event | None, begin: float, part: int,
              image_t: float | None = None, image: np.ndarray | None = None) -> None:
        first = image_t if image_t is not None else next((t for t, _ in self._ring if t >= begin - 1e-6), begin)
        earlier = self._earlier(event, part)
        if earlier is not None:
            self._clips[key] = _Clip(None, event, part, first, adopted=earlier)
            log.info("event %s was already recorded as %s; linking its earlier evidence into this run",
                     key if part == 1 else f"{key} part {part}", Path(earlier.segment_path).name)
            return
        if not self._disk_ok():
            self.skipped += 1
            log.warning("no clip for %s: the disk is low", key if part == 1 else f"{key} part {part}")
            return
        self._counter += 1
        stamp = self.clock.stamp(self._epoch + first)  # local wall time: the counter orders the repeated DST hour
        kind = event.kind if event is not None else "time"
        suffix = "start" if part == 1 else f"part{part}"
        camera = f"{self._camera}_" if self._camera else ""
        path = self.directory / f"segment_{self._counter:06d}_{camera}{stamp}_{kind}_{suffix}.mp4"
        clip = self._clips[key] = _Clip(H264Writer(path, fps=self.fps), event, part, first)
        if image is not None:
            self._write(clip, image_t, image)  # type: ignore[arg-type]
            return
        for t, jpeg in self._ring:
            if t >= begin - 1e-6:
                self._write(clip, t, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))

    def _earlier(self, event: Event | None, part: int) -> Item | None:
        """The outbox row of this event part if its evidence still exists (then no clip is written)."""
        if self.outbox is None or event is None or self.mode != "event":
            return None
        try:
            item = self.outbox.find(event.event_id, part)
        except sqlite3.Error as exc:  # cannot tell: write a new clip (recorded later; a clash is settled then)
            log.error("outbox unreadable while opening a clip for %s (%s); writing a new clip", event.event_id, exc)
            return None
        return item if item is not None and has_evidence(item) else None

    def _write(self, clip: _Clip, t: float, image: np.ndarray) -> None:
        if t <= clip.last_t:
            return
        if clip.writer is not None:
            clip.writer.write(image, t - clip.first_t)
        clip.last_t, clip.frames = t, clip.frames + 1

    def _finalize(self, key: str) -> None:
        clip = self._clips.pop(key)
        if clip.adopted is not None:
            # the part is over: the time a new clip would have been recorded, when this
            # run's metrics entry exists, so the row is linked into it at once
            adopted = clip.adopted
            self._try_record(f"adoption of {Path(adopted.segment_path).name} for {adopted.event_id}",
                             lambda: self._adopt(adopted, clip.part))
            return
        path = clip.writer.close()  # type: ignore[union-attr]
        if path is None:
            return
        self.written.append(path)
        log.info("segment written: %s (%d frames, %.1f s from clock %.2f, %s)", path.name, clip.frames,
                 clip.last_t - clip.first_t, clip.first_t, clip.event.event_id if clip.event else "time")
        if self.outbox is None:
            return
        events = [clip.event] if clip.event is not None else clip.events
        ids = ", ".join(e.event_id for e in events) or "no event"
        progress: dict = {"done": set(), "owned": False}  # a retry goes on where the failed attempt stopped
        rows = [self._row(path, clip, event) for event in events]
        self._try_record(f"{path.name} ({ids})", lambda: self._record(path, rows, progress),
                         note=(path.with_name(path.name + NOTE_SUFFIX), rows))

    def _row(self, path: Path, clip: _Clip, event: Event) -> dict:
        """The arguments of :meth:`Outbox.record` for ``event``'s clip (JSON: also kept in a note)."""
        record = event.to_dict(self.clock)
        record["segment"] = {"filename": path.name, "first_t": clip.first_t, "last_t": clip.last_t,
                             "frames": clip.frames}
        record["metrics_path"] = self.metrics_path
        return {"event_id": event.event_id, "part": clip.part, "kind": event.kind, "segment_path": str(path),
                "event": record, "metrics_path": self.metrics_path}

    def _record_noted(self) -> None:
        """Record the clips an earlier run wrote but could not record (its notes), then drop the notes."""
        if self.outbox is None:
            return
        for note in sorted(self.directory.glob("segment_*" + NOTE_SUFFIX)):
            path = note.with_name(note.name[:-len(NOTE_SUFFIX)])
            try:
                rows = json.loads(note.read_text(encoding="utf-8"))
                if path.is_file():
                    self._record(path, rows, {"done": set(), "owned": False})
                    log.warning("outbox: %s (%s) recorded now; an earlier run could not record it", path.name,
                                ", ".join(r["event_id"] for r in rows))
                note.unlink()
            except (OSError, ValueError, KeyError, TypeError, sqlite3.Error) as exc:
                log.error("outbox: cannot record %s from its note %s: %s", path.name, note.name, exc)

    def _adopt(self, adopted: Item, part: int) -> None:
        self.outbox.adopt(adopted.id, self.metrics_path)  # type: ignore[union-attr]
        self.adopted.append((adopted.event_id, part))

    def _try_record(self, what: str, step: Callable[[], None], note: tuple[Path, list[dict]] | None = None) -> None:
        """Run an outbox step; on a database error keep it for a retry (the clip stays on disk).

        ``note``: where to keep the rows to record if the step fails, for the next run.
        """
        note_path = note[0] if note is not None else None
        if self._unrecorded:  # keep the order: older recordings first
            self._unrecorded.append((what, step, note_path))
            self._write_note(note)
            self._retry_records(force=True)
            return
        try:
            step()
        except sqlite3.Error as exc:
            log.error("outbox: could not record %s (%s); the clip is kept and its recording retried; "
                      "analysis goes on", what, exc)
            self._unrecorded.append((what, step, note_path))
            self._write_note(note)
            self._record_retry_at = time.monotonic() + self.RECORD_RETRY_SECONDS

    @staticmethod
    def _write_note(note: tuple[Path, list[dict]] | None) -> None:
        if note is None:
            return
        try:
            write_json_atomic(note[0], note[1])
        except OSError as exc:  # the disk is full: the recording is only in memory until it succeeds
            log.warning("could not write %s either (%s)", note[0].name, exc)

    def _retry_records(self, force: bool = False, last: bool = False) -> None:
        """Try the waiting outbox steps again, oldest first; stop at the first that still fails."""
        if not self._unrecorded or (not force and time.monotonic() < self._record_retry_at):
            return
        while self._unrecorded:
            what, step, note = self._unrecorded[0]
            try:
                step()
            except sqlite3.Error as exc:
                self._record_retry_at = time.monotonic() + self.RECORD_RETRY_SECONDS
                if last:
                    noted = [w for w, _, n in self._unrecorded if n is not None and n.is_file()]
                    log.error("outbox: %d clip(s) could not be recorded (%s); they stay on disk: %s. %d of them "
                              "have a note and are recorded when the segmenter next starts on %s",
                              len(self._unrecorded), exc, "; ".join(w for w, _, _ in self._unrecorded), len(noted),
                              self.directory)
                return
            self._unrecorded.pop(0)
            if note is not None:
                note.unlink(missing_ok=True)
            log.warning("outbox: %s recorded after an earlier failure", what)

    def _record(self, path: Path, rows: list[dict], progress: dict) -> None:
        """Record a finished clip in the outbox, one transaction per event row (``progress`` remembers
        the rows already recorded, so a retry after a database error does not repeat them)."""
        for row in rows:
            event_id = row["event_id"]
            if event_id in progress["done"]:
                continue
            item_id, outcome = self.outbox.record(**row)  # type: ignore[union-attr]
            progress["done"].add(event_id)
            progress["owned"] |= outcome != ADOPTED
            if outcome == ADOPTED:
                log.info("event %s was already recorded as %s; linking its earlier evidence into this run",
                         event_id, Path(self.outbox.get(item_id).segment_path).name)  # type: ignore[union-attr]
                self.adopted.append((event_id, row["part"]))
            elif outcome == REPLACED:
                log.info("event %s: its earlier clip is gone and was never uploaded; %s takes its place",
                         event_id, path.name)
        if rows and not progress["owned"] and self.mode == "event":  # another writer recorded this part meanwhile
            path.unlink(missing_ok=True)
            if path in self.written:
                self.written.remove(path)

    def _close_all(self) -> None:
        for key in list(self._clips):
            self._finalize(key)

    def _abandon_all(self) -> None:
        for key in [k for k, c in self._clips.items() if c.writer is not None]:  # adopted parts need no disk
            clip = self._clips.pop(key)
            self.skipped += 1
            try:
                clip.writer.abort()  # type: ignore[union-attr]
            except OSError as exc:
                log.warning("could not remove the partial clip: %s", exc)
