"""Live camera source (RTSP and anything FFmpeg opens), read on its own thread.

The reader reconnects with capped exponential backoff after a lost connection, a
refused one, or a stall (a camera that keeps the connection open but sends nothing
is caught by the read timeout).

Clock: frames carry ``timestamp`` = monotonic seconds since the source was made and
``epoch`` = the wall-clock time at that moment (read once), so ``epoch + timestamp``
is the real time while every duration, stall check and buffer that subtracts
timestamps is immune to the wall clock being stepped (NTP, an operator, a dead RTC
battery). A reconnect gap is a gap on that clock, so rules end what was going on
instead of believing people stood still. A wall clock that later moves away from
the anchor by more than ``STEP_WARN_SECONDS`` is logged once per step; names keep
the anchored time base until the next start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import av

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password:
        host = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=host))
    return url


@dataclass
class LiveStats:
    """Counters for the status line and health checks."""

    received: int = 0
    dropped: int = 0
    reconnects: int = 0
    connected: bool = False
    last_frame_at: float | None = None  # on the source's monotonic clock
    last_error: str = ""
    waited: float = 0.0  # seconds the frames handed over waited here, in all


class LiveSource:
    """Newest frames from a camera URL, reconnecting forever.

    Args:
        url: Camera URL, e.g. ``rtsp://user:pass@host/stream``.
        name: Camera name, used as ``frame.video``.
        policy: ``latest`` hands over the newest ``buffer`` frames and drops stale ones (counted);
            ``all`` hands over every frame (the reader waits), for recorded input.
        stall_seconds: No frame for this long means the stream is stalled: reconnect.
        backoff_initial: First wait before reconnecting, doubled after each failure ...
        backoff_max: ... up to this.
        transport: RTSP transport, ``tcp`` (robust through NAT) or ``udp``.
        buffer: Newest frames held for the pipeline. With several cameras in one process
            (:class:`~vizoflow.mux.CameraFeed`) it is also what the camera's feed holds.
            A few (``source.buffer``: 8) ride out a busy moment of the loop, which then
            catches up; the status counts how long frames waited (``frame_wait_seconds``).
        monotonic: Clock for timestamps, durations and stall checks (default ``time.monotonic``).
        wall: Wall clock (default ``time.time``), read once at construction for ``frame.epoch``
            (and later only to warn of steps).
    """

    STEP_WARN_SECONDS = 2.0  # wall clock vs. anchor drift above this is logged as a step

    def __init__(self, url: str, name: str = "camera", policy: str = "latest", stall_seconds: float = 5.0,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0, transport: str = "tcp", buffer: int = 1,
                 monotonic: Callable[[], float] | None = None, wall: Callable[[], float] | None = None) -> None:
        if policy not in ("latest", "all"):
            raise ConfigError(f"source.policy must be 'latest' or 'all', got {policy!r}")
        if not url:
            raise ConfigError("source.url is empty: set the camera URL (e.g. STORE42_ENTRANCE_URL)")
        self.url, self.name, self.policy = url, name, policy
        self.stall_seconds, self.backoff_initial, self.backoff_max = stall_seconds, backoff_initial, backoff_max
        self.transport = transport
        self.stats = LiveStats()
        self.buffer = max(1, buffer)
        self._frames: queue.Queue[Frame] = queue.Queue(maxsize=self.buffer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self.monotonic = monotonic or time.monotonic
        self.wall = wall or time.time
        self._anchor = self.monotonic()  # clock time 0
        self.epoch = self.wall()  # the real time at clock time 0
        self._started = 0.0  # clock time the current iteration started (stall reference before a frame)
        self._step_seen = 0.0  # last wall-clock step logged (s)

    total_frames = None  # endless

    def _open(self) -> av.container.InputContainer:
        options = {"rtsp_transport": self.transport} if self.url.startswith("rtsp") else {}
        return av.open(self.url, options=options, timeout=(self.stall_seconds, self.stall_seconds))

    def _read(self) -> None:
        backoff = self.backoff_initial
        while not self._stop.is_set():
            try:
                with self._open() as container:
                    stream = container.streams.video[0]
                    log.info("camera %s connected: %s", self.name, redact_url(self.url))
                    self.stats.connected = True
                    for frame in container.decode(stream):
                        if self._stop.is_set():
                            return
                        self._hand_over(frame.to_ndarray(format="bgr24"))
                        backoff = self.backoff_initial
                raise EOFError("stream ended")
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                if self._stop.is_set():
                    return
                self.stats.connected = False
                self.stats.reconnects += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("camera %s lost (%s); reconnecting in %.1f s", self.name, self.stats.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    def now(self) -> float:
        """Seconds on the source's clock (monotonic, 0 when the source was made)."""
        return self.monotonic() - self._anchor

    def _check_wall(self, t: float) -> None:
        """Log once per step when the wall clock moved away from the anchored time."""
        step = self.wall() - (self.epoch + t)
        if abs(step - self._step_seen) > self.STEP_WARN_SECONDS:
            log.warning("camera %s: the wall clock is now %+.1f s off the time base anchored at the start (a clock "
                        "step); timestamps, durations and stall checks are unaffected (monotonic), names and dates "
                        "keep the start's time base until the next start", self.name, step)
            self._step_seen = step

    def _hand_over(self, image) -> None:
        now = self.now()
        frame = Frame(video=self.name, index=self._index, timestamp=now, image=image, epoch=self.epoch)
        self._index += 1
        self.stats.received += 1
        self.stats.last_frame_at = now
        if self._index % 100 == 1:
            self._check_wall(now)
        if self.policy == "latest":
            try:
                self._frames.put_nowait(frame)
            except queue.Full:
                try:
                    self._frames.get_nowait()
                    self.stats.dropped += 1
                except queue.Empty:
                    pass
                self._frames.put_nowait(frame)
        else:
            while not self._stop.is_set():
                try:
                    self._frames.put(frame, timeout=0.2)
                    return
                except queue.Full:
                    continue

    def status(self) -> dict[str, float]:
        """Camera-side numbers for the status line and health check (safe from any thread)."""
        last = self._started if self.stats.last_frame_at is None else self.stats.last_frame_at
        return {"frames_received": self.stats.received, "frames_dropped": self.stats.dropped,
                "reconnects": self.stats.reconnects, "camera_connected": float(self.stats.connected),
                "frame_wait_seconds": self.stats.waited,
                "seconds_since_frame": max(0.0, self.now() - last)}

    def __iter__(self) -> Iterator[Frame]:
        self._stop.clear()
        self._started = self.now()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._read, name=f"vizoflow-camera-{self.name}", daemon=True)
            self._thread.start()
        while not self._stop.is_set():
            try:
                frame = self._frames.get(timeout=0.2)
            except queue.Empty:
                continue
            self.stats.waited += self.now() - frame.timestamp
            yield frame

    def stop(self) -> None:
        """Make the iteration end (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Stop reading and join the reader thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stall_seconds + 5)
            self._thread = None
