"""Frame sources: recorded files (one, a folder, or a glob) decoded on their own thread."""

from __future__ import annotations

import glob
import logging
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from vizoflow.errors import SourceError
from vizoflow.frame import Frame
from vizoflow.video import FROM_CONFIG, FROM_MTIME, VideoInfo, decode, probe

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".ts", ".webm", ".m4v"}
_END = object()


def expand_videos(path: str) -> list[Path]:
    """The video files ``path`` names: a file, a folder (sorted by name), or a glob.

    Raises:
        SourceError: nothing there, or a folder/glob without videos.
    """
    if any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(path, recursive=True))
        files = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file()]
        if not files:
            raise SourceError(f"no video files match {path}")
        return files
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file())
        if not files:
            raise SourceError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) in folder {p}")
        return files
    if not p.exists():
        raise SourceError(f"video file not found: {p}")
    return [p]


class VideoFileSource:
    """Recorded video as frames on the video clock.

    Every file is probed when the source is built, so a missing or corrupt file fails
    before the detector loads. Decoding runs on a background thread that stays at
    most ``prefetch`` frames ahead, keeping it off the inference thread.

    Args:
        path: A video file, a folder of them (processed in name order), or a glob.
        stride: Keep every ``stride``-th frame; kept frames keep their original index.
        prefetch: Decoded frames buffered ahead of the pipeline.
        start_time: Real time of the first frame as UTC epoch seconds; default from the
            file (``creation_time`` tag, else modification time minus duration, a guess
            that is warned about once per video and recorded in :attr:`start_time_sources`).
    """

    def __init__(self, path: str, stride: int = 1, prefetch: int = 8, start_time: float | None = None) -> None:
        if stride < 1:
            raise SourceError(f"source.stride must be >= 1, got {stride}")
        if prefetch < 1:
            raise SourceError(f"source.prefetch must be >= 1, got {prefetch}")
        self.videos: list[VideoInfo] = [probe(p) for p in expand_videos(str(path))]
        self.stride = stride
        self.prefetch = prefetch
        self.start_time = start_time
        if start_time is not None:
            try:
                self.start_time = float(start_time)
            except (TypeError, ValueError):
                raise SourceError(f"source.start_time must be UTC epoch seconds, got {start_time!r}") from None
        for info in self.videos:
            if self.start_time is None and info.epoch_source == FROM_MTIME:
                log.warning("%s: %s; its start time is guessed from the file's modification time minus its "
                            "duration (%s), and every date of its events shifts if the file was copied: "
                            "set source.start_time to the real time", info.path, info.epoch_note,
                            datetime.fromtimestamp(info.epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def start_time_sources(self) -> dict[str, str]:
        """Where each video's start time comes from (video name to ``creation_time tag``,
        ``modification time (guess)`` or ``source.start_time``)."""
        return {info.path.stem: FROM_CONFIG if self.start_time is not None else info.epoch_source
                for info in self.videos}

    @property
    def start_time_source(self) -> str | dict[str, str]:
        """One source for all videos when they agree, else :attr:`start_time_sources`."""
        sources = self.start_time_sources
        distinct = set(sources.values())
        return distinct.pop() if len(distinct) == 1 else sources

    @property
    def fps(self) -> float:
        """Frame rate of the first video (for writers that need a nominal rate)."""
        return self.videos[0].fps / self.stride

    @property
    def total_frames(self) -> int | None:
        """Frames this source will yield, when the headers tell."""
        if any(v.frames is None for v in self.videos):
            return None
        return sum(-(-v.frames // self.stride) for v in self.videos)  # type: ignore[operator]

    def _frames(self) -> Iterator[Frame]:
        for info in self.videos:
            epoch = info.epoch if self.start_time is None else self.start_time
            for index, seconds, image in decode(info.path, info.frames):
                if index % self.stride == 0:
                    yield Frame(video=info.path.stem, index=index, timestamp=seconds, image=image, epoch=epoch)

    def _offer(self, out: queue.Queue[object], item: object) -> bool:
        """Put ``item`` unless the consumer stopped; False when it did."""
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, out: queue.Queue[object]) -> None:
        try:
            for frame in self._frames():
                if not self._offer(out, frame):
                    return
            self._offer(out, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._offer(out, exc)

    def __iter__(self) -> Iterator[Frame]:
        self._stop.clear()
        frames: queue.Queue[object] = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._produce, args=(frames,), name="vizoflow-decode", daemon=True)
        self._thread.start()
        try:
            while (item := frames.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the decoding thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
