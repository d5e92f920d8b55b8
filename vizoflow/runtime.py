"""Drive frames from a source through the nodes, time them, always close them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from vizoflow.errors import NodeError, VizoflowError
from vizoflow.frame import Frame
from vizoflow.node import Node

log = logging.getLogger(__name__)


class Source(Protocol):
    """A finite or endless iterable of frames that can be closed."""

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@dataclass
class RunStats:
    """What a run did, for ``run.json`` and the final summary."""

    status: str = "running"
    frames: int = 0
    seconds: float = 0.0
    node_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None

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

    Nodes that define ``process_batch(frames) -> frames`` receive ``batch_size``
    consecutive frames at once (the detector uses it); others get them one by one,
    in order. Every node's ``finish(frame)`` and ``close()`` run at the end, also
    after a stop, an error or Ctrl-C, so events already seen are ended and sinks
    flush what they have. ``end_of_stream()`` runs only when the source yielded its
    last frame, so a node that stores a *whole* video (the track cache) never
    mistakes a stopped run for a complete one.

    Args:
        source: Iterable of frames with ``close()``; ``total_frames`` (optional) sizes the progress bar.
        nodes: ``(name, node)`` pairs in run order (see :func:`vizoflow.graph.build_nodes`).
        batch_size: Frames per batch; use 1 live so latency stays one frame.
        progress: Show a progress bar.
        on_batch: Called with each processed batch (the live status board).
    """

    def __init__(self, source: Source, nodes: Sequence[tuple[str, Node]], batch_size: int = 1, progress: bool = True,
                 on_batch: Callable[[list[Frame]], None] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source = source
        self.nodes = list(nodes)
        self.batch_size = batch_size
        self.progress = progress
        self.on_batch = on_batch
        self.stats = RunStats(node_seconds={name: 0.0 for name, _ in self.nodes})
        self._stop = threading.Event()
        self._last: Frame | None = None

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
        try:
            for batch in _batches(self.source, self.batch_size):
                self._process(batch)
                self.stats.frames += len(batch)
                bar.update(len(batch))
                if self.on_batch is not None:
                    self.on_batch(batch)
                if self._stop.is_set():
                    break
            self.stats.status = "stopped" if self._stop.is_set() else "ok"
        except KeyboardInterrupt:
            self.stats.status = "interrupted"
            raise
        except BaseException as exc:
            self.stats.status = "failed"
            self.stats.error = str(exc)
            raise
        finally:
            bar.close()
            self._finish_all()
            if self.stats.status == "ok":  # the source ran out by itself: no stop, no error
                self._end_of_stream_all()
            self.stats.seconds = time.perf_counter() - started
            self._close_all()
        return self.stats

    def _process(self, batch: list[Frame]) -> None:
        clock = time.perf_counter
        seconds = self.stats.node_seconds
        for name, node in self.nodes:
            t0 = clock()
            try:
                if hasattr(node, "process_batch"):
                    batch = node.process_batch(batch)
                else:
                    batch = [node.process(frame) for frame in batch]
            except VizoflowError:
                raise
            except Exception as exc:
                raise NodeError(name, batch[0].index, exc) from exc
            seconds[name] += clock() - t0
        self._last = batch[-1]

    def _finish_all(self) -> None:
        """No more frames: let nodes with ``finish(frame)`` end open events, and sinks see them.

        The frame passed along is an empty copy of the last frame seen (its clock and
        video), so events ended here carry real times. Runs after a stop or an error
        too: events already started were really observed, so they are closed, not
        lost. Whether the source reached its end is told apart by ``end_of_stream()``.
        """
        if self._last is None:
            return
        frame = Frame(video=self._last.video, index=self._last.index, timestamp=self._last.timestamp,
                      image=self._last.image, epoch=self._last.epoch)
        for name, node in self.nodes:
            finish = getattr(node, "finish", None)
            if finish is None:
                continue
            try:
                frame = finish(frame)
            except Exception as exc:  # noqa: BLE001 - keep finishing the others
                log.error("node '%s' failed to finish: %s", name, exc)

    def _end_of_stream_all(self) -> None:
        """Tell nodes with ``end_of_stream()`` that the source yielded its last frame."""
        for name, node in self.nodes:
            end_of_stream = getattr(node, "end_of_stream", None)
            if end_of_stream is None:
                continue
            try:
                end_of_stream()
            except Exception as exc:  # noqa: BLE001 - a node that cannot complete must not stop the others
                log.error("node '%s' failed at the end of the stream: %s", name, exc)

    def _close_all(self) -> None:
        """Close every node, then the source; re-raise the first failure after all closed."""
        first: BaseException | None = None
        for name, node in [*self.nodes, ("source", self.source)]:
            close = getattr(node, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                first = first or NodeError(name, -1, exc)
        if first is not None and self.stats.status in ("ok", "stopped"):
            self.stats.status = "failed"
            self.stats.error = str(first)
            raise first
