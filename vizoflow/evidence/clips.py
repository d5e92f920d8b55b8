"""One camera's event clips with pre-roll, cut off the frame loop.

Frames go to a worker thread through a bounded queue. The worker keeps the last
``buffer_seconds`` as JPEG (about 20x smaller than raw BGR, in one reused buffer:
:class:`~vizoflow.evidence.preroll.JpegRing`) so a clip can begin
``pre_roll`` seconds before the event *started*, which is ``min_seconds`` earlier than
the moment the rule could say so. Buffered frames are re-encoded, so the first frame
of a clip is exactly the first buffered frame at or after ``start - pre_roll``; no
waiting for a keyframe.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vizoflow.clock import SiteClock
from vizoflow.errors import ConfigError
from vizoflow.events import Event
from vizoflow.evidence.disk import DiskGuard
from vizoflow.evidence.outbox import Item
from vizoflow.evidence.preroll import JpegRing
from vizoflow.evidence.recorder import ClipLog, ClipRecorder
from vizoflow.files import absolute
from vizoflow.frame import Frame
from vizoflow.video import H264Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSettings:
    """How clips are cut (the ``evidence:`` section).

    Attributes:
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
    """

    mode: str = "event"
    pre_roll: float = 10.0
    post_roll: float = 5.0
    max_seconds: float = 120.0
    buffer_seconds: float = 45.0
    fps: float = 25.0
    jpeg_quality: int = 90
    queue_size: int = 64

    def __post_init__(self) -> None:
        if self.mode not in ("event", "time"):
            raise ConfigError(f"evidence.mode must be 'event' or 'time', got {self.mode!r}")
        if self.max_seconds <= 0 or self.pre_roll < 0 or self.post_roll < 0 or self.buffer_seconds < self.pre_roll:
            raise ConfigError("evidence: need max_seconds > 0, pre_roll >= 0, post_roll >= 0, "
                              "buffer_seconds >= pre_roll")


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


class ClipCutter:
    """Cut one camera's H.264 clips around events (or back-to-back) into the evidence folder.

    Made by :meth:`vizoflow.evidence.Evidence.clips`; each finished clip is handed to the
    site's :class:`ClipRecorder`.

    Re-running footage meets event ids the outbox already has (ids come from the video
    clock). When a part is about to start and the outbox has a row for it whose
    evidence still exists (the clip file, or its upload on a server), no clip is
    written: the row is *adopted* when the part would have been finished, i.e. this
    run's metrics file is added to it and it is made due for delivery to endpoints it
    has not reached yet. A row whose clip is gone and was never on a server gets the
    newly written clip instead. So every clip in the folder is owned by a row, and
    every event of this run gets evidence (``docs/evidence_reruns.md``). An event with
    no clip at all (disk low, write error) is logged with its id.

    Args:
        directory: Where clips go.
        settings: How clips are cut.
        recorder: Records finished clips (shared by the site's cameras).
        disk: The evidence disk's guard (shared by the site's cameras).
        metrics_path: The run's ``analytics_metrics.json``, where the evidence is linked later.
        timezone: The site's IANA time zone. Clip names carry the local wall time
            (``segment_000042_cam0_20261129_135010_…``); the zero-padded counter before it
            keeps names unique and in recording order, also through the repeated autumn hour.
    """

    def __init__(self, directory: Path, settings: ClipSettings, recorder: ClipRecorder, disk: DiskGuard,
                 metrics_path: str | None = None, timezone: str = "UTC") -> None:
        self.directory, self.settings, self.recorder, self.disk = directory, settings, recorder, disk
        self.metrics_path = str(absolute(metrics_path)) if metrics_path else None
        self.clock = SiteClock(timezone)
        self.log = ClipLog()
        self.skipped = 0  # clips not started because the disk was low, or abandoned on a write error
        self._queue: queue.Queue[tuple] = queue.Queue(maxsize=settings.queue_size)
        self._ring = JpegRing(settings.buffer_seconds)
        self._clips: dict[str, _Clip] = {}
        self._video: str | None = None
        self._camera = ""
        self._epoch = 0.0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="vizoflow-clips", daemon=True)
        self._thread.start()

    @property
    def written(self) -> list[Path]:
        """Clips written by this cutter (a duplicate of another writer's is taken out)."""
        return self.log.written

    @property
    def adopted(self) -> list[tuple[str, int]]:
        """``(event_id, part)`` linked to an earlier run's clip instead of a new one."""
        return self.log.adopted

    # -- frame loop side -------------------------------------------------------------
    def process(self, frame: Frame) -> Frame:
        """Hand the frame and its events to the worker (blocks only if it is far behind)."""
        if self._error is not None:
            raise RuntimeError(f"clip writer failed: {self._error}") from self._error
        self._camera = frame.camera  # several cameras share the folder: clip names carry the camera
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
        """Finish writing and stop the worker (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(("flush",))
            self._queue.put(("stop",))
            self._thread.join()

    def status(self) -> dict[str, float]:
        """This camera's clip numbers for the live status line."""
        return {"clips_open": len(self._clips), "clips_written": len(self.written), "clips_skipped": self.skipped,
                "clips_queued": self._queue.qsize(), "preroll_mb": round(self._ring.nbytes / 2**20, 1)}

    # -- worker side -------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message[0] == "stop":
                    self.recorder.retry(force=True)  # the final try, with its log line, is the service's
                    return
                if message[0] == "frame":
                    self._on_frame(*message[1:])
                    self.recorder.retry()
                elif message[0] == "event":
                    self._on_event(message[1])
                else:
                    self._close_all()
                    self.recorder.retry(force=True)
            except sqlite3.Error as exc:  # the outbox cannot be read or written: clips go on, recordings wait
                log.error("clips: outbox error (%s); analysis goes on", exc)
            except OSError as exc:  # disk full, file system gone: lose the clips, not the pipeline
                log.error("clip write failed, open clips abandoned (%s): %s",
                          ", ".join(k for k, c in self._clips.items() if c.writer is not None) or "none", exc)
                self._abandon_all()
            except Exception as exc:  # reported to the frame loop
                log.exception("clip writer failed")
                self._error = exc

    def _on_frame(self, video: str, t: float, epoch: float, image: np.ndarray) -> None:
        s = self.settings
        if video != self._video:
            self._close_all()
            self._ring.clear()
            self._video, self._epoch = video, epoch
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        if ok:
            self._ring.append(t, jpeg)
        if s.mode == "time" and not self._clips:
            self._open("time", None, t, part=1, image_t=t, image=image)
            return
        for key, clip in list(self._clips.items()):
            if clip.until is not None and t > clip.until:
                self._finalize(key)
                continue
            if t - clip.first_t >= s.max_seconds:
                self._finalize(key)
                if clip.event is not None and clip.until is None or s.mode == "time":
                    self._open(key, clip.event, t, part=clip.part + 1, image_t=t, image=image)
                continue
            self._write(clip, t, image)

    def _on_event(self, event: Event) -> None:
        if self.settings.mode == "time":
            clip = next(iter(self._clips.values()), None)
            if clip is not None and event.phase == "start":
                clip.events.append(event)
            return
        clip = self._clips.get(event.event_id)
        if event.phase == "start" and clip is None:
            begin = event.started_at - self.settings.pre_roll
            self._open(event.event_id, event, begin, part=1)
        elif clip is not None:
            clip.event = event
            if event.phase == "end":
                clip.until = event.ended_at + self.settings.post_roll

    def _open(self, key: str, event: Event | None, begin: float, part: int,
              image_t: float | None = None, image: np.ndarray | None = None) -> None:
        first = image_t if image_t is not None else self._ring.first_since(begin - 1e-6)
        first = begin if first is None else first
        earlier = self.recorder.earlier(event, part) if event is not None and self.settings.mode == "event" else None
        if earlier is not None:
            self._clips[key] = _Clip(None, event, part, first, adopted=earlier)
            log.info("event %s was already recorded as %s; linking its earlier evidence into this run",
                     key if part == 1 else f"{key} part {part}", Path(earlier.segment_path).name)
            return
        if not self.disk.ok():
            self.skipped += 1
            log.warning("no clip for %s: the disk is low", key if part == 1 else f"{key} part {part}")
            return
        stamp = self.clock.stamp(self._epoch + first)  # local wall time: the counter orders the repeated DST hour
        kind = event.kind if event is not None else "time"
        suffix = "start" if part == 1 else f"part{part}"
        camera = f"{self._camera}_" if self._camera else ""
        path = self.directory / f"segment_{self.recorder.next_number():06d}_{camera}{stamp}_{kind}_{suffix}.mp4"
        clip = self._clips[key] = _Clip(H264Writer(path, fps=self.settings.fps), event, part, first)
        if image is not None and image_t is not None:
            self._write(clip, image_t, image)
            return
        for t, jpeg in self._ring.since(begin - 1e-6):
            self._write(clip, t, cv2.imdecode(jpeg, cv2.IMREAD_COLOR))

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
            self.recorder.adopt(clip.adopted, clip.part, self.metrics_path, self.log)
            return
        assert clip.writer is not None
        path = clip.writer.close()
        if path is None:
            return
        self.written.append(path)
        log.info("clip written: %s (%d frames, %.1f s from clock %.2f, %s)", path.name, clip.frames,
                 clip.last_t - clip.first_t, clip.first_t, clip.event.event_id if clip.event else "time")
        events = [clip.event] if clip.event is not None else clip.events
        self.recorder.record(path, [self._row(path, clip, event) for event in events], self.log)

    def _row(self, path: Path, clip: _Clip, event: Event) -> dict:
        """The arguments of :meth:`Outbox.record` for ``event``'s clip (JSON: also kept in a note)."""
        record = event.to_dict(self.clock)
        record["segment"] = {"filename": path.name, "first_t": clip.first_t, "last_t": clip.last_t,
                             "frames": clip.frames}
        record["metrics_path"] = self.metrics_path
        return {"event_id": event.event_id, "part": clip.part, "kind": event.kind, "segment_path": str(path),
                "event": record, "metrics_path": self.metrics_path}

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
