"""Several cameras as one stream of rounds: the newest frame of each camera, fairly.

Every camera's source is read on its own thread (:class:`CameraFeed`) into a small
buffer; the frame loop takes a *round*, at most ``per_camera`` frames from each
camera that has one (:class:`CameraMux`), so a round goes through the one shared
detector together and no camera waits for another. A camera that stalls simply has
no frame in the next rounds; one that fails (its source raises) is dropped from the
mux, named in :meth:`CameraMux.cameras_status`, and the others go on.

Live cameras (``total_frames is None``) keep only their newest frames (as many as
their source's ``buffer``; ``source.buffer`` is 8): when the loop is slower than a
camera, that camera's oldest frame is dropped and counted, so
every camera drops in proportion to what it sends and none starves (each gets one
slot per round). Recorded files are not dropped: their reader waits for the loop.
Memory stays bounded either way: ``per_camera`` frames per camera at most.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from vizoflow.frame import Frame
from vizoflow.status import combine_status

log = logging.getLogger(__name__)

STREAMING, ENDED, FAILED = "streaming", "ended", "failed"


class CameraFeed:
    """Reads one camera's source on a thread into a bounded buffer.

    Args:
        name: Camera name, set on every frame as ``frame.camera``.
        source: Iterable of frames with ``close()`` (and ``stop()`` / ``status()`` when live).
        buffer: Frames held by a recorded source; a live one holds its source's ``buffer`` (default 1).
        wake: Set whenever a frame arrives or the feed ends, so the loop need not poll.
    """

    def __init__(self, name: str, source: Any, buffer: int, wake: threading.Event) -> None:
        self.name, self.source, self.wake = name, source, wake
        self.live = getattr(source, "total_frames", None) is None
        self.buffer = getattr(source, "buffer", 1) if self.live else max(1, buffer)
        self._frames: deque[Frame] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.state = STREAMING
        self.error = ""
        self.dropped = 0  # frames replaced by a newer one before the loop took them
        self.waited = 0.0  # seconds the frames the loop took had waited, in all (live, on the source's clock)
        self._now = getattr(source, "now", None) if self.live else None  # the source's clock, where it has one
        self._thread = threading.Thread(target=self._read, name=f"vizoflow-feed-{name}", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.source:
                frame.camera = self.name
                if not self._put(frame):
                    return
            if self.state != FAILED:
                self.state = ENDED
        except Exception as exc:  # noqa: BLE001 - one camera's failure must not end the others
            self.fail(f"source: {type(exc).__name__}: {exc}")
        finally:
            self.wake.set()

    def _put(self, frame: Frame) -> bool:
        """Hand a frame over; False when the feed was stopped meanwhile."""
        with self._room:
            if self.live:
                if len(self._frames) >= self.buffer:
                    self._frames.popleft()
                    self.dropped += 1
            else:
                while len(self._frames) >= self.buffer and not self._stop.is_set():
                    self._room.wait(0.2)
            if self._stop.is_set():
                return False
            self._frames.append(frame)
        self.wake.set()
        return True

    def take(self, n: int) -> list[Frame]:
        """Up to ``n`` buffered frames, oldest first (never blocks)."""
        with self._room:
            taken = [self._frames.popleft() for _ in range(min(n, len(self._frames)))]
            if taken:
                self._room.notify()
        if taken and self._now is not None:
            at = self._now()
            self.waited += sum(at - frame.timestamp for frame in taken)
        return taken

    @property
    def done(self) -> bool:
        """Ended or failed, and nothing left to take."""
        with self._lock:
            return self.state != STREAMING and not self._frames

    def fail(self, error: str) -> None:
        """Mark the camera failed (its source raised, or a node of it did) and stop reading it."""
        if self.state != FAILED:
            log.error("camera %s failed: %s; the other cameras go on", self.name, error)
        self.state, self.error = FAILED, error
        self.stop()
        with self._lock:
            self._frames.clear()

    def stop(self) -> None:
        """Stop reading (safe from a signal handler)."""
        self._stop.set()
        stop_source = getattr(self.source, "stop", None)
        if stop_source is not None:
            stop_source()

    def close(self) -> None:
        """Stop, join the reader, close the source."""
        self.stop()
        with self._room:
            self._room.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.source.close()

    def status(self) -> dict[str, float]:
        """The source's live numbers plus the frames this feed dropped."""
        values: dict[str, float] = {}
        source_status = getattr(self.source, "status", None)
        if callable(source_status):
            values = {k: float(v) for k, v in source_status().items()}
        values["frames_dropped"] = values.get("frames_dropped", 0.0) + self.dropped
        if self.live:  # from the source's hand-over to the loop: its own queue's wait is inside
            values["frame_wait_seconds"] = self.waited
        values["failed"] = float(self.state == FAILED)
        return values


class CameraMux:
    """Rounds of frames from several cameras, for :class:`~vizoflow.runtime.Runtime`.

    Args:
        sources: Camera name -> source, in the site's order.
        per_camera: Frames taken from one camera per round (recorded input); a live
            camera only ever has its newest.
        idle_wait: Seconds to wait for any frame when no camera has one.
    """

    total_frames = None  # the progress bar counts frames, not a total

    def __init__(self, sources: Mapping[str, Any], per_camera: int = 1, idle_wait: float = 0.2) -> None:
        self._wake = threading.Event()
        self.feeds = {name: CameraFeed(name, source, max(2, per_camera), self._wake) for name, source in sources.items()}
        self.per_camera, self.idle_wait = max(1, per_camera), idle_wait
        self._stop = threading.Event()
        self._started = False

    @property
    def cameras(self) -> list[str]:
        """Camera names in the site's order."""
        return list(self.feeds)

    def rounds(self) -> Iterator[list[Frame]]:
        """Each round: up to ``per_camera`` frames of every camera that has one; ends when all ended or failed."""
        if not self._started:
            for feed in self.feeds.values():
                feed.start()
            self._started = True
        while not self._stop.is_set():
            self._wake.clear()
            batch = [frame for feed in self.feeds.values() if feed.state != FAILED for frame in feed.take(self.per_camera)]
            if batch:
                yield batch
            elif all(feed.done for feed in self.feeds.values()):
                return
            else:
                self._wake.wait(self.idle_wait)

    def fail(self, camera: str, error: str) -> None:
        """Drop a camera whose node failed; its frames are no longer taken."""
        self.feeds[camera].fail(error)

    def stop(self) -> None:
        """End the rounds and stop every camera (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()
        for feed in self.feeds.values():
            feed.stop()

    def close(self) -> None:
        """Stop and close every camera; the first failure is raised after all are closed."""
        self.stop()
        first: BaseException | None = None
        for feed in self.feeds.values():
            try:
                feed.close()
            except Exception as exc:  # noqa: BLE001 - close the others
                first = first or exc
        if first is not None:
            raise first

    def cameras_status(self) -> dict[str, dict[str, Any]]:
        """Per camera: its live numbers, ``state`` and the ``error`` that failed it."""
        out: dict[str, dict[str, Any]] = {}
        for name, feed in self.feeds.items():
            try:
                values: dict[str, Any] = feed.status()
            except Exception as exc:  # noqa: BLE001 - a status read must never stop the pipeline
                values = {"status_error": f"{type(exc).__name__}: {exc}"}
            out[name] = {**values, "state": feed.state, "error": feed.error}
        return out

    def status(self) -> dict[str, float]:
        """The cameras' numbers as one, for the site-wide line and metrics (see
        :func:`~vizoflow.status.combine_status`: stalls are judged per camera)."""
        return combine_status(self.cameras_status().values())

    @property
    def epochs(self) -> dict[str, float]:
        """Live cameras' clock anchors (``epoch + timestamp`` is the real time of a frame)."""
        return {name: feed.source.epoch for name, feed in self.feeds.items() if hasattr(feed.source, "epoch")}

    @property
    def start_time_source(self) -> dict[str, Any] | None:
        """Where each camera's dates come from (files: tag or guess; live: the wall clock)."""
        found = {name: getattr(feed.source, "start_time_source", "wall clock" if feed.live else None)
                 for name, feed in self.feeds.items()}
        return found if any(v is not None for v in found.values()) else None
