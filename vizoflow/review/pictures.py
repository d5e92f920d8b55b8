"""Pictures for the review page: a thumbnail per clip, a camera's latest frame with its zones and lines."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import supervision as sv

from vizoflow.errors import SourceError
from vizoflow.nodes.annotate import Annotator
from vizoflow.zones import Zones


def jpeg(image: np.ndarray, width: int | None = None, quality: int = 80) -> bytes:
    """``image`` as JPEG bytes, scaled down to ``width`` px if it is wider."""
    if width is not None and image.shape[1] > width:
        image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SourceError("could not encode a JPEG")
    return data.tobytes()


def still(clip: Path, at_seconds: float) -> np.ndarray:
    """The frame ``at_seconds`` into ``clip`` (its last, if shorter), decoding from the keyframe before it.

    Clips keep their video's own times, so ``at_seconds`` counts from the clip's first frame.

    Raises:
        SourceError: the clip cannot be opened or decoded, or has no picture.
    """
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            first = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            target = first + at_seconds
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is not None and frame.time >= target - 1e-3:
                    break
            if chosen is None:
                raise SourceError(f"no picture in {clip.name}")
            return chosen.to_ndarray(format="bgr24")
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise SourceError(f"cannot read {clip.name}: {exc}") from None


class Thumbnails:
    """A still per clip: the frame where its event starts (after the pre-roll), cached.

    An alerts page shows dozens, so the newest ``size`` thumbnails are kept, keyed by file
    and modification time, and one is made at a time: a page full of new alerts must not
    take the cores from a live run in the same process.

    Args:
        at_seconds: Where in the clip the still is taken (``evidence.pre_roll``); a shorter clip gives its last frame.
        width: Thumbnail width in px.
        size: Thumbnails kept.
    """

    def __init__(self, at_seconds: float, width: int = 320, size: int = 256) -> None:
        self.at_seconds = at_seconds
        self.width = width
        self.size = size
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()  # the web server's worker threads share the cache
        self._making = threading.Lock()  # one decode at a time

    def get(self, clip: Path) -> bytes:
        """The clip's thumbnail as JPEG.

        Raises:
            SourceError: the clip is gone or cannot be decoded.
        """
        try:
            key = (str(clip), clip.stat().st_mtime_ns)
        except OSError:
            raise SourceError(f"{clip.name} is gone") from None
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self._making:
            data = jpeg(still(clip, self.at_seconds), self.width)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return data


def scaled_lines(lines: Mapping[str, Sequence[Sequence[float]]], drawn: Sequence[int] | None,
                 size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Counting lines in the pixels of a ``size`` frame (drawn on ``drawn``, scaled like zones)."""
    sx, sy = (size[0] / drawn[0], size[1] / drawn[1]) if drawn else (1.0, 1.0)
    return {name: np.asarray(points, dtype=float) * [sx, sy] for name, points in (lines or {}).items()}


def draw_layout(image: np.ndarray, zones: Zones, lines: Mapping[str, Sequence[Sequence[float]]]) -> np.ndarray:
    """A copy of ``image`` with every zone and counting line drawn and named (zones scaled to it)."""
    out = image.copy()
    h, w = out.shape[:2]
    zones.check_inside((w, h))
    Annotator(zones).draw_zones(out)
    color = sv.Color.from_hex("#ffd400")
    for name, (a, b) in scaled_lines(lines, zones.drawn_size, (w, h)).items():  # the arrow: first point to second
        cv2.arrowedLine(out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color.as_bgr(), 2, tipLength=0.08)
        sv.draw_text(out, name, sv.Point(int(b[0]), int(b[1])), text_color=sv.Color.BLACK,
                     text_scale=0.4, text_padding=2, background_color=color)
    return out
