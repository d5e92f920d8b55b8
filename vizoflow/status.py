"""Live status: a periodic one-line summary, Prometheus metrics and a health check.

Numbers come from three places: the frame loop (frames processed, people on
tracks), the source (frames received and dropped, reconnects, time since the last
frame: read straight from the camera thread, so a stall shows even while the frame
loop waits) and every node with a ``status() -> dict[str, float]`` method (open
events, outbox backlog, disk state). Node numbers are gathered by the frame loop
at most once per ``refresh`` seconds, so no node is read from another thread.

Health tells the failure modes apart, because the fixes differ:

* ``camera stalled``: no frame from the camera for ``stall_seconds`` (look at the camera or network);
* ``pipeline stuck``: frames arrive but none was processed for ``stall_seconds`` (a node hangs);
* ``disk low``: new clips are not written (free space);
* ``evidence backlog`` (degraded, still healthy): the camera and analysis are fine but
  the evidence worker is behind, e.g. blocked on the upload API;
* ``falling behind`` (degraded, still healthy): analysis is slower than the camera, so
  the live source drops frames (over 10% of them in the last ``window`` seconds);
* ``node '<name>' status failed`` (degraded, still healthy): a node's (or the source's)
  ``status()`` raised, so its numbers are missing (not counted as 0). Logged at WARNING
  once per streak of failures, and again at INFO when it works again.

With several cameras (a :class:`~vizoflow.mux.CameraMux` source) each camera is judged
on its own: ``camera 'checkout' stalled`` or ``camera 'checkout' failed: ...`` names it,
the status line gets a part per camera, and ``/metrics`` has ``vizoflow_camera_*``
gauges labelled ``camera="<name>"``.

All times here are on a monotonic clock, so a wall-clock step (NTP) neither fakes a
stall nor hides one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame

log = logging.getLogger(__name__)

Values = dict[str, float]

# How one site-wide number is made of several (the cameras of a site, a node's instances
# per camera, the nodes of a graph); any key not named here is a count or a backlog and is summed.
HIGHEST = frozenset({"disk_low", "analytics_unsaved", "evidence_busy_seconds"})  # flags (0/1) and ages
LOWEST = frozenset({"disk_free_mb"})  # free space of the one disk the cameras share; -1 is "not read yet"
PER_CAMERA = frozenset({"seconds_since_frame", "camera_connected", "failed"})  # judged per camera only


def combine_status(parts: Iterable[Mapping[str, Any]]) -> Values:
    """Several ``status()`` dicts as one, each key by what it means.

    The one rule for :class:`StatusBoard` (its nodes), :meth:`vizoflow.runtime.PerCamera.status`
    (a node's instances, one per camera) and :meth:`vizoflow.mux.CameraMux.status` (the
    cameras). The board and ``PerCamera`` used to sum every key and the mux to sum all but
    the per-camera ones; summing is right only for the first kind:

    * counts and backlogs (frames, reconnects, open events, pending evidence ...) are summed;
    * :data:`HIGHEST`: a flag such as ``disk_low`` is 1 when any part has it (summed, two
      cameras on a low disk made it 2) and an age such as ``evidence_busy_seconds`` is the longest;
    * :data:`LOWEST`: ``disk_free_mb`` is the lowest reading. The cameras write to one
      ``evidence.dir``, so summing counted the same free space once per camera ("disk low:
      600 MB free" with 300 MB left); on separate disks the fullest is the one that stops
      clips. A part that has not read its disk yet says -1 and is left out, unless none has;
    * :data:`PER_CAMERA` (``seconds_since_frame``, ``camera_connected``, ``failed``) are left
      out, as the mux did: a sum fakes a stall, a maximum would keep the whole site "stalled"
      behind one failed camera. They are judged per camera (``cameras_status()``, the
      ``vizoflow_camera_*`` gauges);
    * text (a camera's ``state`` and ``error``) is skipped.
    """
    total: Values = {}
    for part in parts:
        for key, value in part.items():
            if key in PER_CAMERA or isinstance(value, str):
                continue
            value = float(value)
            if key not in total:
                total[key] = value
            elif key in HIGHEST:
                total[key] = max(total[key], value)
            elif key in LOWEST:
                if value >= 0:
                    total[key] = value if total[key] < 0 else min(total[key], value)
            else:
                total[key] += value
    return total


class StatusBoard:
    """Collects the numbers; :meth:`snapshot` and :meth:`health` are safe from any thread.

    Args:
        source: The frame source; its optional ``status()`` is read live.
        nodes: ``(name, node)`` pairs; nodes with ``status()`` contribute (same keys: :func:`combine_status`).
        stall_seconds: No frame received / processed for this long is unhealthy.
        backlog_items: Pending evidence items above which evidence is "behind".
        refresh: Seconds between reads of the nodes' numbers.
        window: Seconds over which the share of dropped camera frames is judged.
        clock: Monotonic clock (default ``time.monotonic``; tests inject one); only differences are used.
    """

    DROP_SHARE = 0.10  # dropping more than this share of camera frames is "falling behind"

    def __init__(self, source: Any, nodes: Sequence[tuple[str, Any]], stall_seconds: float = 10.0,
                 backlog_items: int = 20, refresh: float = 1.0, window: float = 30.0,
                 clock: Callable[[], float] | None = None) -> None:
        clock = clock or time.monotonic
        self.source = source
        self.nodes = [(name, node) for name, node in nodes if callable(getattr(node, "status", None))]
        self.stall_seconds, self.backlog_items, self.refresh, self.clock = stall_seconds, backlog_items, refresh, clock
        self.started = clock()
        self._lock = threading.Lock()
        self._frames = 0
        self._tracks = 0
        self._last_processed = 0.0
        self._node_values: Values = {}
        self._refreshed = float("-inf")
        self.window = window
        self._camera: deque[tuple[float, float, float]] = deque()  # (time, received, dropped), last `window` s
        self._failed: dict[str, str] = {}  # node name -> error of its status(), while it keeps failing
        self._processed: dict[str, int] = {}  # camera -> frames processed (several cameras)
        self._detected: dict[str, int] = {}  # camera -> frames the detector looked at (several cameras)
        self._analysed = 0

    def on_batch(self, batch: list[Frame]) -> None:
        """Called by the frame loop after each batch."""
        now = self.clock()
        values = self._read_nodes() if now - self._refreshed >= self.refresh else None
        camera = self._source_numbers() if values is not None else None
        with self._lock:
            self._frames += len(batch)
            analysed = [frame for frame in batch if frame.analysed]
            self._analysed += len(analysed)
            if analysed:  # a frame the detector skipped has no boxes: it says nothing of the people there
                self._tracks = len(analysed[-1].detections)
            for frame in batch:
                if frame.camera:
                    self._processed[frame.camera] = self._processed.get(frame.camera, 0) + 1
                    if frame.analysed:
                        self._detected[frame.camera] = self._detected.get(frame.camera, 0) + 1
            self._last_processed = now
            if values is not None:
                self._node_values, self._refreshed = values, now
            if camera:
                self._camera.append((now, camera.get("frames_received", 0.0), camera.get("frames_dropped", 0.0)))
                while self._camera and now - self._camera[0][0] > self.window:
                    self._camera.popleft()

    def _source_numbers(self) -> Values:
        """The source's own numbers, read now (a camera reports them; a file source has none)."""
        source_status = getattr(self.source, "status", None)
        if not callable(source_status):
            return {}
        try:
            values = {k: float(v) for k, v in source_status().items()}
        except Exception as exc:  # noqa: BLE001 - a status read must never stop the pipeline
            self._status_failed("source", exc)
            return {}
        self._status_ok("source")
        return values

    def _status_failed(self, name: str, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            first = name not in self._failed
            self._failed[name] = error
        if first:
            log.warning("status of node '%s' failed, its numbers are missing from status and health: %s",
                        name, error)

    def _status_ok(self, name: str) -> None:
        with self._lock:
            was = self._failed.pop(name, None)
        if was is not None:
            log.info("status of node '%s' works again", name)

    def cameras(self) -> dict[str, dict[str, Any]]:
        """Per camera of a several-camera source: its numbers, ``frames_processed`` and ``frames_detected``
        (those the detector looked at), ``state`` and ``error``."""
        cameras_status = getattr(self.source, "cameras_status", None)
        if not callable(cameras_status):
            return {}
        with self._lock:
            processed, detected = dict(self._processed), dict(self._detected)
        return {name: {**values, "frames_processed": float(processed.get(name, 0)),
                       "frames_detected": float(detected.get(name, 0))}
                for name, values in cameras_status().items()}

    def status_failures(self) -> dict[str, str]:
        """Nodes whose ``status()`` fails now: name -> error."""
        with self._lock:
            return dict(self._failed)

    def dropped_share(self) -> float:
        """Share of camera frames dropped over the last ``window`` seconds (0 without a camera)."""
        with self._lock:
            if len(self._camera) < 2:
                return 0.0
            (_, r0, d0), (_, r1, d1) = self._camera[0], self._camera[-1]
        return (d1 - d0) / (r1 - r0) if r1 > r0 else 0.0

    def _read_nodes(self) -> Values:
        parts = []
        for name, node in self.nodes:
            try:
                parts.append({key: float(value) for key, value in node.status().items()})
            except Exception as exc:  # noqa: BLE001 - a status read must never stop the pipeline
                self._status_failed(name, exc)
                continue
            self._status_ok(name)
        return combine_status(parts)

    def snapshot(self) -> Values:
        """All numbers now."""
        now = self.clock()
        with self._lock:
            values = dict(self._node_values)
            values.update(frames_processed=self._frames, frames_detected=self._analysed, active_tracks=self._tracks,
                          seconds_since_processed=now - (self._last_processed or self.started),
                          uptime_seconds=now - self.started)
        values.update(self._source_numbers())
        values["status_failures"] = float(len(self.status_failures()))
        return values

    def health(self, values: Values | None = None) -> tuple[bool, list[str]]:
        """``(healthy, problems)``; problems are short sentences, "degraded" ones keep it healthy."""
        v = self.snapshot() if values is None else values
        problems, healthy = [], True
        if v.get("seconds_since_frame", 0.0) > self.stall_seconds:
            healthy = False
            problems.append(f"camera stalled: no frame for {v['seconds_since_frame']:.0f} s"
                            f" ({v.get('reconnects', 0):.0f} reconnects)")
        elif v["seconds_since_processed"] > self.stall_seconds:
            healthy = False
            problems.append(f"pipeline stuck: no frame processed for {v['seconds_since_processed']:.0f} s")
        for name, row in self.cameras().items():
            if row.get("state") == "failed":
                healthy = False
                problems.append(f"camera '{name}' failed: {row.get('error')}")
            elif row.get("seconds_since_frame", 0.0) > self.stall_seconds:
                healthy = False
                problems.append(f"camera '{name}' stalled: no frame for {row['seconds_since_frame']:.0f} s"
                                f" ({row.get('reconnects', 0):.0f} reconnects)")
        if v.get("disk_low", 0.0) > 0:
            healthy = False
            problems.append(f"disk low: not writing clips ({v.get('disk_free_mb', 0):.0f} MB free)")
        share = self.dropped_share()
        if share > self.DROP_SHARE:
            problems.append(f"degraded: falling behind the camera, {100 * share:.0f}% of frames dropped "
                            f"in the last {self.window:.0f} s")
        if v.get("evidence_pending", 0.0) > self.backlog_items or v.get("evidence_busy_seconds", 0.0) > 60:
            problems.append(f"degraded: evidence backlog {v.get('evidence_pending', 0):.0f} pending, "
                            f"worker busy {v.get('evidence_busy_seconds', 0):.0f} s on one item")
        for name, error in sorted(self.status_failures().items()):
            problems.append(f"degraded: node '{name}' status failed: {error}")
        return healthy, problems


def _rate(now: dict[str, Any], before: dict[str, Any] | None, seconds: float, key: str) -> float:
    if before is None or seconds <= 0:
        return 0.0
    return (now.get(key, 0.0) - before.get(key, 0.0)) / seconds


def camera_parts(now: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]] | None, seconds: float) -> str:
    """``name: in x fps, processed y fps, detected z fps, dropped n, reconnects k[, state]`` per camera."""
    parts = []
    for name, row in now.items():
        old = (before or {}).get(name)
        part = (f"{name}: in {_rate(row, old, seconds, 'frames_received'):.1f} fps, "
                f"processed {_rate(row, old, seconds, 'frames_processed'):.1f} fps, "
                f"detected {_rate(row, old, seconds, 'frames_detected'):.1f} fps, "
                f"dropped {row.get('frames_dropped', 0):.0f}, reconnects {row.get('reconnects', 0):.0f}")
        parts.append(part + (f", {row['state'].upper()}" if row.get("state") not in (None, "streaming") else ""))
    return "; ".join(parts)


def status_line(now: Values, before: Values | None, seconds: float, problems: list[str],
                cameras: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]] | None] | None = None) -> str:
    """One line: rates over the last interval, counters, each camera's part (several), and what is wrong."""
    def rate(key: str) -> float:
        return _rate(now, before, seconds, key)

    parts = [f"in {rate('frames_received'):.1f} fps" if "frames_received" in now else None,
             f"processed {rate('frames_processed'):.1f} fps",
             f"detected {rate('frames_detected'):.1f} fps",
             f"dropped {now.get('frames_dropped', 0):.0f}" if "frames_dropped" in now else None,
             f"tracks {now.get('active_tracks', 0):.0f}",
             f"open events {now.get('open_events', 0):.0f}",
             f"outbox pending {now.get('evidence_pending', 0):.0f}" if "evidence_pending" in now else None,
             f"reconnects {now.get('reconnects', 0):.0f}" if "reconnects" in now else None]
    line = "status: " + ", ".join(p for p in parts if p)
    if cameras and cameras[0]:
        line += " | " + camera_parts(cameras[0], cameras[1], seconds)
    return line + (" | " + "; ".join(problems).upper() if problems else "")


class StatusReporter:
    """Logs the status line every ``interval`` seconds and serves ``/metrics`` and ``/health``.

    Use as a context manager around the run. The HTTP server binds ``host`` (loopback
    by default: metrics are not for the whole network unless asked); port 0 picks a
    free port, see :attr:`port`.

    Args:
        board: The numbers.
        interval: Seconds between status lines; 0 disables them.
        port: HTTP port; None disables the server.
        host: Address to bind.
    """

    def __init__(self, board: StatusBoard, interval: float = 10.0, port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        self.board, self.interval, self.host = board, interval, host
        self.port = port
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> StatusReporter:
        if self.interval > 0:
            self._threads.append(threading.Thread(target=self._log_loop, name="vizoflow-status", daemon=True))
        if self.port is not None:
            try:
                self._server = ThreadingHTTPServer((self.host, self.port), _handler(self.board))
            except OSError as exc:
                raise ConfigError(f"status.port: cannot serve on {self.host}:{self.port}: {exc.strerror or exc}") from None
            self._server.daemon_threads = True
            self.port = self._server.server_address[1]
            self._threads.append(threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                                  name="vizoflow-status-http", daemon=True))
            log.info("status on http://%s:%d/metrics and /health", self.host, self.port)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _log_loop(self) -> None:
        before, cameras_before, then = None, None, time.monotonic()
        while not self._stop.wait(self.interval):
            now_t = time.monotonic()
            values, cameras = self.board.snapshot(), self.board.cameras()
            healthy, problems = self.board.health(values)
            line = status_line(values, before, now_t - then, problems, (cameras, cameras_before))
            (log.info if healthy and not problems else log.warning)("%s", line)
            before, cameras_before, then = values, cameras, now_t


def _handler(board: StatusBoard) -> type[BaseHTTPRequestHandler]:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    class BoardCollector:
        def collect(self):
            values = board.snapshot()
            healthy, _ = board.health(values)
            yield GaugeMetricFamily("vizoflow_healthy", "1 when camera, pipeline and disk are fine", value=healthy)
            for key, value in sorted(values.items()):
                yield GaugeMetricFamily(f"vizoflow_{key}", key.replace("_", " "), value=value)
            cameras = board.cameras()
            keys = sorted({k for row in cameras.values() for k, v in row.items() if isinstance(v, (int, float))})
            for key in keys:
                family = GaugeMetricFamily(f"vizoflow_camera_{key}", f"{key.replace('_', ' ')}, per camera",
                                           labels=["camera"])
                for name, row in cameras.items():
                    if isinstance(row.get(key), (int, float)):
                        family.add_metric([name], float(row[key]))
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                body, code, kind = generate_latest(registry), 200, "text/plain; version=0.0.4"
            elif self.path.split("?")[0] in ("/health", "/healthz"):
                healthy, problems = board.health()
                body = json.dumps({"status": "ok" if healthy else "unhealthy", "problems": problems}).encode()
                code, kind = (200 if healthy else 503), "application/json"
            else:
                body, code, kind = b"not found: try /metrics or /health\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes every few seconds: keep them out of the log
            pass

    return Handler
