"""Thin adapters around PyAV: probe and decode videos, write browser-playable H.264.

OpenCV's ``VideoWriter`` here cannot write H.264, and its reader hides the
presentation timestamps that rules need; PyAV gives both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vizoflow.errors import SourceError

# Where a video's start time (``VideoInfo.epoch``) came from; recorded in run.json and
# analytics_metrics.json so an analyst knows which dates to trust.
FROM_TAG = "creation_time tag"
FROM_MTIME = "modification time (guess)"
FROM_CONFIG = "source.start_time"
FROM_WALL_CLOCK = "wall clock"


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a quick look at a video file tells."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int | None
    duration: float | None
    epoch: float
    epoch_source: str = FROM_TAG  # FROM_TAG or FROM_MTIME (a guess: a copied file shifts every date)
    epoch_note: str = ""  # why it is a guess (for the warning)


def _creation_epoch(container: av.container.InputContainer, path: Path,
                    duration: float | None) -> tuple[float, str, str]:
    """Real time of the first frame, where it came from, and why when it is a guess.

    The container ``creation_time`` tag, else the modification time minus the duration:
    archive files are usually closed when recording stops, so the guess lands near the
    truth for the original file, but a copied or touched file shifts every date.
    """
    tag = container.metadata.get("creation_time")
    note = "no creation_time tag"
    if tag:
        try:
            when = datetime.fromisoformat(tag.replace("Z", "+00:00"))
        except ValueError:
            note = f"unreadable creation_time tag {tag!r}"
        else:
            if when.tzinfo is None:  # ffmpeg writes UTC; a tag without zone is taken as UTC, not local time
                when = when.replace(tzinfo=UTC)
            return when.timestamp(), FROM_TAG, ""
    return path.stat().st_mtime - (duration or 0.0), FROM_MTIME, note


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and read its header.

    Raises:
        SourceError: missing file, not a video, or no video stream.
    """
    if not path.is_file():
        raise SourceError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"no video stream in {path}")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                container.duration / 1e6 if container.duration else None)
            frames = stream.frames or (round(duration * fps) if duration else None)
            return VideoInfo(path, stream.codec_context.width, stream.codec_context.height, fps, frames or None,
                             duration, *_creation_epoch(container, path, duration))
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot read video {path}: {exc}") from None


def decode(path: Path, expected_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, seconds, bgr_image)`` for every frame, seconds from the first frame.

    Args:
        path: Video file.
        expected_frames: Frame count from the container index; decoding fewer means the
            file is truncated, which FFmpeg otherwise reports as a normal end.

    Raises:
        SourceError: the file is corrupt or truncated (names the file and the frame reached),
            raised after the decodable frames were yielded so their results are kept.
    """
    index = -1
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            first: float | None = None
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time
                if t is None:
                    t = index / fps
                first = t if first is None else first
                yield index, t - first, frame.to_ndarray(format="bgr24")
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot decode {path} after frame {index}: {exc}") from None
    if index < 0:
        raise SourceError(f"no frame could be decoded from {path}")
    if expected_frames and index + 1 < expected_frames:
        raise SourceError(f"{path} is truncated or corrupt: decoded {index + 1} of {expected_frames} frames")


class H264Writer:
    """Write BGR frames to a browser-playable H.264 ``.mp4`` (yuv420p, faststart).

    Frames carry their own timestamps so a clip with dropped frames keeps real
    durations. The file is written under a ``.partial`` name and renamed on
    :meth:`close`, so a reader never mistakes a half-written clip for a whole one.

    Args:
        path: Final file name.
        fps: Nominal rate; sets the time base granularity.
        crf: x264 quality (lower is better, 23 is x264's default).
        preset: x264 speed/size trade-off.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, crf: int = 26, preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._fps = fps
        self._crf = crf
        self._preset = preset
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._time_base = Fraction(1, 1000)
        self._last_pts = -1
        self.frames = 0

    def _open(self, width: int, height: int) -> None:
        self._container = av.open(str(self._partial), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=Fraction(self._fps).limit_denominator(1000))
        stream.width = width - width % 2
        stream.height = height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = self._time_base
        stream.codec_context.time_base = self._time_base
        stream.options = {"crf": str(self._crf), "preset": self._preset}
        self._stream = stream

    def write(self, image: np.ndarray, seconds: float) -> None:
        """Append one frame shown at ``seconds`` from the clip start."""
        if self._container is None:
            self._open(image.shape[1], image.shape[0])
        assert self._stream is not None and self._container is not None
        h, w = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        pts = max(round(seconds / self._time_base), self._last_pts + 1)
        frame.pts = pts
        frame.time_base = self._time_base
        self._last_pts = pts
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder and publish the file; returns its path, None if no frame was written."""
        if self._container is None:
            return None
        assert self._stream is not None
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        """Give up the clip: close what is open and delete the ``.partial`` file."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(OSError, av.error.FFmpegError):  # the file is deleted next anyway
                container.close()
        self._partial.unlink(missing_ok=True)
