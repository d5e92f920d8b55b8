"""Drive frames from a source through the nodes, time them, always close them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from vizoflow.errors import NodeError, VizoflowError
from vizoflow.frame import Frame
from vizoflow.node import Node
from vizoflow.status import combine_status

log = logging.getLogger(__name__)


class Source(Protocol):
    """A finite or endless iterable of frames that can be closed."""

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class PerCamera:
    """A graph entry with one node per camera (its tracker, rules, clips ...).

    The runtime hands each node only its own camera's frames (``frame.camera``), and a
    node that raises fails only its camera: see :meth:`Runtime._per_camera`.

    Args:
        instances: Camera name -> that camera's node.
    """

    def __init__(self, instances: Mapping[str, Node]) -> None:
        self.instances = dict(instances)

    def run_info(self) -> dict[str, str]:
        """For ``run.json``: what the instances report (the same models and settings on every camera)."""
        info: dict[str, str] = {}
        for node in self.instances.values():
            if callable(getattr(node, "run_info", None)):
                info.update(node.run_info())
        return info

    def status(self) -> dict[str, float]:
        """The instances' numbers as one (see :func:`~vizoflow.status.combine_status`); raises if one's raises."""
        return combine_status(node.status() for node in self.instances.values()
                              if callable(getattr(node, "status", None)))


def _call(node: Any, frames: list[Frame]) -> list[Frame]:
    """``frames`` through ``node``: at once if it has ``process_batch``, else one by one."""
    if hasattr(node, "process_batch"):
        return node.process_batch(frames)
    return [node.process(frame) for frame in frames]


def _every_frame(node: Any) -> bool:
    """Whether a node sees frames the detector skips (``every_frame``: the gate, clips, preview)."""
    own = next(iter(node.instances.values()), None) if isinstance(node, PerCamera) else node
    return bool(getattr(own, "every_frame", False))


def _merge(batch: list[Frame], out: list[Frame], failed: set[str]) -> list[Frame]:
    """``batch`` in its order, analysed frames as a node returned them and skipped ones as they were.

    A frame the node dropped (its camera failed) stays dropped, and so do skipped
    frames of a failed camera.
    """
    if all(frame.analysed for frame in batch):
        return out
    returned = {id(frame) for frame in out}
    return [frame for frame in batch
            if id(frame) in returned or (not frame.analysed and frame.camera not in failed)]


def _nodes_of(node: Any, camera: str | None = None) -> list[Any]:
    """The node itself, or the instances of a :class:`PerCamera` (only ``camera``'s when given)."""
    if not isinstance(node, PerCamera):
        return [node]
    if camera is None:
        return list(node.instances.values())
    return [node.instances[camera]] if camera in node.instances else []


@dataclass
class RunStats:
    """What a run did, for ``run.json`` and the final summary."""

    status: str = "running"
    frames: int = 0
    seconds: float = 0.0
    node_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)  # several cameras: frames, status, error

    @property
    def fps(self) -> float:
        """Frames processed per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def node_table(self) -> dict[str, dict[str, float]]:
        """Per node: milliseconds per frame and share of the run's wall time."""
        frames = max(self.frames, 1)
        total = self.seconds or 1.0
        table = {
            name: {"ms_per_frame": round(1000 * s / frames, 3), "share": round(s / total, 4)}
            for name, s in self.node_seconds.items()
        }
        return table

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "status": self.status,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "nodes": self.node_table(),
            "error": self.error,
            **({"cameras": self.cameras} if self.cameras else {}),
        }


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Runtime:
    """Runs a source through an ordered list of named nodes.

    Frames the detect gate skipped (``frame.analysed`` false) go only to nodes with
    ``every_frame`` (the gate itself, clips, the preview); the others get the analysed
    frames of a batch, and the batch keeps its order.
    Nodes that define ``process_batch(frames) -> frames`` receive ``batch_size``
    consecutive frames at once (the detector uses it); others get them one by one,
    in order. A source with ``rounds()`` (several cameras, :class:`~vizoflow.mux.CameraMux`)
    hands over its own batches instead, a frame or a few of each camera; shared nodes
    (the detector) see the whole round, :class:`PerCamera` entries only their camera's
    frames, and a camera whose node fails is ended and dropped while the others go on.
    Every node's ``finish(frame)`` and ``close()`` run at the end, also after a stop,
    an error or Ctrl-C, so events already seen are ended and sinks flush what they have.
    ``end_of_stream()`` runs only when the source yielded its last frame, so a node
    that stores a *whole* video (the track cache) never mistakes a stopped run for a
    complete one.

    Args:
        source: Iterable of frames with ``close()``; ``total_frames`` (optional) sizes the progress bar.
        nodes: ``(name, node)`` pairs in run order (see :func:`vizoflow.graph.build_nodes`).
        batch_size: Frames per batch; use 1 live so latency stays one frame.
        progress: Show a progress bar.
        on_batch: Called with each processed batch (the live status board).
        ahead: How many of the first nodes (the gate and the detector) work on the next
            batch, on a thread of their own, while the others handle this one (0: none).
            The detector and the trackers' appearance model then use both cores at once
            instead of taking turns; each node still sees every camera's frames in order.
    """

    def __init__(self, source: Source, nodes: Sequence[tuple[str, Node]], batch_size: int = 1, progress: bool = True,
                 on_batch: Callable[[list[Frame]], None] | None = None, ahead: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= ahead <= len(nodes):
            raise ValueError(f"ahead must be between 0 and the {len(nodes)} nodes, got {ahead}")
        self.ahead = ahead
        self.source = source
        self.nodes = list(nodes)
        self.batch_size = batch_size
        self.progress = progress
        self.on_batch = on_batch
        self.stats = RunStats(node_seconds={name: 0.0 for name, _ in self.nodes})
        self._stop = threading.Event()
        self._last: dict[str, Frame] = {}  # camera ("" with one) -> its last frame
        self._failed: set[str] = set()
        self._closed: set[int] = set()  # ids of nodes closed already (a failed camera's, early)

    def stop(self) -> None:
        """Ask the run to finish after the current batch (safe from a signal handler).

        An endless source (a camera) is told to stop too, so a wait for its next frame ends.
        """
        self._stop.set()
        stop_source = getattr(self.source, "stop", None)
        if stop_source is not None:
            stop_source()

    def run(self) -> RunStats:
        """Process every frame of the source; return the statistics.

        Raises:
            NodeError: a node raised; the message names it and the frame.
        """
        started = time.perf_counter()
        bar = tqdm(total=getattr(self.source, "total_frames", None), unit="frame", disable=not self.progress, dynamic_ncols=True)
        rounds = getattr(self.source, "rounds", None)
        batches = rounds() if callable(rounds) else _batches(self.source, self.batch_size)
        front = self._front_ahead(batches) if self.ahead else None
        try:
            for batch in (front if front is not None else batches):
                batch = self._process(batch, start=self.ahead)
                self._count(batch)
                bar.update(len(batch))
                if self.on_batch is not None and batch:
                    self.on_batch(batch)
                if self._stop.is_set():
                    break
            self.stats.status = "stopped" if self._stop.is_set() else "ok"
            self._note_cameras()
        except KeyboardInterrupt:
            self.stats.status = "interrupted"
            raise
        except BaseException as exc:
            self.stats.status = "failed"
            self.stats.error = str(exc)
            raise
        finally:
            if front is not None:
                front.close()  # the next batch's detection ends before any node is finished or closed
            bar.close()
            self._finish_all()
            if self.stats.status == "ok":  # the source ran out by itself: no stop, no error
                self._end_of_stream_all()
            self.stats.seconds = time.perf_counter() - started
            self._close_all()
        return self.stats

    def _note_cameras(self) -> None:
        """Cameras whose source failed go into the statistics; a run where every camera failed failed."""
        cameras_status = getattr(self.source, "cameras_status", None)
        if not callable(cameras_status):
            return
        for camera, values in cameras_status().items():
            row = self._camera_row(camera)
            if values.get("state") == "failed" and row["status"] != "failed":
                row.update(status="failed", error=values.get("error"))
        rows = self.stats.cameras
        if rows and all(row["status"] == "failed" for row in rows.values()):
            self.stats.status = "failed"
            self.stats.error = "every camera failed: " + "; ".join(f"{c}: {r['error']}" for c, r in rows.items())

    def _camera_row(self, camera: str) -> dict[str, Any]:
        """The statistics of one camera (several cameras)."""
        return self.stats.cameras.setdefault(camera, {"frames": 0, "status": "ok", "error": None})

    def _count(self, batch: list[Frame]) -> None:
        self.stats.frames += len(batch)
        for frame in batch:
            if frame.camera:
                self._camera_row(frame.camera)["frames"] += 1

    def _front_ahead(self, batches: Iterator[list[Frame]]) -> Iterator[list[Frame]]:
        """Each batch through the first ``ahead`` nodes, one batch ahead of the caller, on a thread of its own.

        While the caller takes batch N through the other nodes, the worker takes batch
        N+1 through these. A camera whose node fails there is failed here, on the
        caller's thread, before its batch goes on (failing closes that camera's nodes).
        Closing the generator waits for the worker, so no node is closed under it.
        """
        def front(batch: list[Frame]) -> tuple[list[Frame], list[tuple[str, str]]]:
            failures: list[tuple[str, str]] = []
            return self._process(batch, stop=self.ahead, failures=failures), failures

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vizoflow-ahead") as worker:
            pending: Future | None = None
            try:
                for batch in batches:
                    done = pending.result() if pending is not None else None
                    pending = worker.submit(front, batch)
                    if done is not None:
                        yield self._failed_out(*done)
                if pending is not None:
                    done, pending = pending.result(), None
                    yield self._failed_out(*done)
            finally:
                if pending is not None:
                    wait([pending])

    def _failed_out(self, batch: list[Frame], failures: list[tuple[str, str]]) -> list[Frame]:
        """Fail the cameras whose node failed ahead; the batch without failed cameras' frames.

        That also drops frames of a camera that failed behind (in a tracker) while this
        batch was ahead, so no later node sees a failed camera's frames.
        """
        for camera, error in failures:
            if camera not in self._failed:
                self._fail_camera(camera, error)
        return [frame for frame in batch if frame.camera not in self._failed] if self._failed else batch

    def _process(self, batch: list[Frame], start: int = 0, stop: int | None = None,
                 failures: list[tuple[str, str]] | None = None) -> list[Frame]:
        """``batch`` through the nodes ``start`` to ``stop`` (all by default).

        With ``failures`` given (the worker of :meth:`_front_ahead`), a camera whose node
        raises is noted there and left out, not failed: failing it is the caller's.
        """
        clock = time.perf_counter
        seconds = self.stats.node_seconds
        for name, node in self.nodes[start:stop]:
            if not batch:
                break
            t0 = clock()
            every = _every_frame(node)
            given = batch if every else [frame for frame in batch if frame.analysed]
            if isinstance(node, PerCamera):
                out = self._per_camera(name, node, given, failures) if given else []
            else:
                try:
                    out = _call(node, given) if given else []
                except VizoflowError:
                    raise
                except Exception as exc:
                    raise NodeError(name, given[0].index, exc) from exc
            batch = out if every else _merge(batch, out, self._out_of_play(failures))
            seconds[name] += clock() - t0
        if stop is None:
            for frame in batch:
                self._last[frame.camera] = frame
        return batch

    def _per_camera(self, name: str, node: PerCamera, batch: list[Frame],
                    failures: list[tuple[str, str]] | None = None) -> list[Frame]:
        """Each camera's frames through that camera's node; a camera whose node raises is failed
        (noted in ``failures`` when given, see :meth:`_process`)."""
        by_camera: dict[str, list[Frame]] = {}
        for frame in batch:
            by_camera.setdefault(frame.camera, []).append(frame)
        out: list[Frame] = []
        skip = self._out_of_play(failures)
        for camera, frames in by_camera.items():
            if camera in skip:
                continue
            try:
                out += _call(node.instances[camera], frames)
            except Exception as exc:  # noqa: BLE001 - one camera's failure must not stop the others
                error = exc if isinstance(exc, VizoflowError) else NodeError(name, frames[0].index, exc)
                if failures is None:
                    self._fail_camera(camera, str(error))
                else:
                    failures.append((camera, str(error)))
        return out

    def _out_of_play(self, failures: list[tuple[str, str]] | None) -> set[str]:
        """Cameras whose frames go no further: failed, or noted in ``failures`` on the round ahead."""
        return self._failed | {camera for camera, _ in failures} if failures else self._failed

    def _fail_camera(self, camera: str, error: str) -> None:
        """End a camera after its node failed: stop reading it, end its open events, close its nodes."""
        log.error("camera %s failed: %s; the other cameras go on", camera, error)
        self._failed.add(camera)
        self._camera_row(camera).update(status="failed", error=error)
        fail = getattr(self.source, "fail", None)
        if callable(fail):
            fail(camera, error)
        if camera in self._last:
            self._finish_camera(camera, self._last[camera])
        for name, node in self.nodes:
            if isinstance(node, PerCamera):
                self._close_one(name, node.instances.get(camera))

    def _finish_all(self) -> None:
        """No more frames: let nodes with ``finish(frame)`` end open events, and sinks see them.

        Per camera, the frame passed along is an empty copy of that camera's last frame
        (its clock and video), so events ended here carry real times. Runs after a
        stop or an error too: events already started were really observed, so they are
        closed, not lost. Whether the source reached its end is told apart by
        ``end_of_stream()``.
        """
        for camera, last in list(self._last.items()):
            if camera not in self._failed:
                self._finish_camera(camera, last)

    def _finish_camera(self, camera: str, last: Frame) -> None:
        frame = Frame(video=last.video, index=last.index, timestamp=last.timestamp,
                      image=last.image, epoch=last.epoch, camera=last.camera)
        for name, node in self.nodes:
            for own in _nodes_of(node, camera or None):
                finish = getattr(own, "finish", None)
                if finish is None:
                    continue
                try:
                    frame = finish(frame)
                except Exception as exc:  # noqa: BLE001 - keep finishing the others
                    log.error("node '%s' failed to finish: %s", name, exc)

    def _end_of_stream_all(self) -> None:
        """Tell nodes with ``end_of_stream()`` that the source yielded its last frame."""
        for name, node in self.nodes:
            for own in _nodes_of(node):
                end_of_stream = getattr(own, "end_of_stream", None)
                if end_of_stream is None:
                    continue
                try:
                    end_of_stream()
                except Exception as exc:  # noqa: BLE001 - a node that cannot complete must not stop the others
                    log.error("node '%s' failed at the end of the stream: %s", name, exc)

    def _close_one(self, name: str, node: Any) -> BaseException | None:
        """Close ``node`` once; the failure, if any."""
        close = getattr(node, "close", None)
        if close is None or id(node) in self._closed:
            return None
        self._closed.add(id(node))
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - keep closing the others
            log.error("node '%s' failed to close: %s", name, exc)
            return NodeError(name, -1, exc)
        return None

    def _close_all(self) -> None:
        """Close every node, then the source; re-raise the first failure after all closed."""
        first: BaseException | None = None
        for name, node in [*self.nodes, ("source", self.source)]:
            for own in _nodes_of(node):
                error = self._close_one(name, own)  # every node is closed, also after a failure
                first = first or error
        if first is not None and self.stats.status in ("ok", "stopped"):
            self.stats.status = "failed"
            self.stats.error = str(first)
            raise first
