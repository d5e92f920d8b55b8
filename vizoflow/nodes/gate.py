"""When the detector looks: at most ``fps`` times a second, and while nothing moves only now and then.

Detection (and the tracking and rules after it) is nearly all of a camera's cost, and
most of a store's video does not need it: a camera sends 10-30 frames a second where
people move a few pixels, and for long stretches nothing moves at all. Frigate's
answer, taken here: detect at a low rate of its own (``fps``, independent of the
camera's), and only while cheap motion detection on a small grey copy of the frame
sees something change. People who stand still stop making motion, so a keep-alive
look every ``keepalive_seconds`` keeps their tracks, and the unattended, queue and
service times built on them, going.

Frames the gate lets through are *analysed* (``frame.analysed``): the detector, the
tracker and everything after them see them. The others still go to the nodes that
need every frame (:attr:`every_frame`: clips, the preview), so evidence keeps the
camera's full frame rate. Rules and store figures keep their times on the video
clock, whatever the rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.zones import Zones

_EPS = 1e-3  # seconds: frame times are rounded; a frame 1/fps after the last look is due


class MotionMeter:
    """Share of a frame that differs from a slowly adapting background, on a small grey copy.

    The background follows the picture with a time constant of ``background_seconds``
    (video clock), so a person who stops becomes background after a few seconds and a
    slow light drift never counts as motion. A change over more than ``lighting_area``
    of the picture at once (lights switched, auto exposure, the camera's IR mode) is
    not people: the background is taken anew from this frame, and it counts as no motion.

    Args:
        width: Width of the grey copy in pixels (its height keeps the aspect ratio).
        threshold: Grey levels (0-255) a pixel must differ from the background by.
        background_seconds: Time constant of the background.
        lighting_area: Share of the picture beyond which a change is light, not motion.
    """

    def __init__(self, width: int = 160, threshold: float = 15.0, background_seconds: float = 2.0,
                 lighting_area: float = 0.5) -> None:
        self.width, self.threshold = int(width), float(threshold)
        self.background_seconds, self.lighting_area = float(background_seconds), float(lighting_area)
        self._background: np.ndarray | None = None
        self._t = 0.0
        self._ignore: np.ndarray | None = None  # pixels never counted (masks), at the small size
        self.lighting_changes = 0

    def small(self, image: np.ndarray) -> np.ndarray:
        """The blurred grey copy motion is measured on (float32)."""
        h, w = image.shape[:2]
        size = (self.width, max(1, round(h * self.width / w)))
        grey = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)

    def ignore(self, polygons: Sequence[np.ndarray], frame_size: tuple[int, int]) -> None:
        """Never count motion inside these polygons (image pixels of a ``(width, height)`` frame)."""
        w, h = frame_size
        scale = self.width / w
        mask = np.zeros((max(1, round(h * scale)), self.width), np.uint8)
        for poly in polygons:
            cv2.fillPoly(mask, [np.rint(np.asarray(poly) * scale).astype(np.int32)], 1)
        self._ignore = mask.astype(bool) if mask.any() else None

    def reset(self) -> None:
        """Forget the background (another video, another size)."""
        self._background = None

    def measure(self, image: np.ndarray, t: float) -> float:
        """Share of the picture (0-1) that moved since the background; 1.0 on the first frame."""
        small = self.small(image)
        if self._background is None or self._background.shape != small.shape:
            self._background, self._t = small, t
            return 1.0
        moved = np.abs(small - self._background) > self.threshold
        if self._ignore is not None and self._ignore.shape == moved.shape:
            moved &= ~self._ignore
        share = float(moved.mean())
        if share > self.lighting_area:
            self.lighting_changes += 1
            self._background, self._t = small, t
            return 0.0
        alpha = 1.0 - math.exp(-max(t - self._t, 0.0) / self.background_seconds)
        cv2.accumulateWeighted(small, self._background, alpha)
        self._t = t
        return share


class DetectGate:
    """Node, one per camera, before the detector: decides which frames are analysed.

    A frame is analysed when it is due at the ``fps`` rate (due times step by ``1 / fps``,
    so the rate holds on average whatever the camera's) and, with ``motion`` on, something
    moved (at least ``motion_area`` of the picture) or ``keepalive_seconds`` passed. The
    first frame of a video is always analysed.

    Args:
        fps: Analysed frames per second at most; None or 0: every frame (the camera's rate).
        motion: Analyse only while something moves (plus the keep-alive).
        keepalive_seconds: Longest time between two analysed frames when nothing moves;
            keep it below the rules' ``gap_seconds`` so people standing still stay seen.
        motion_area: Share of the picture that must move to count as motion.
        motion_threshold: Grey levels a pixel must change by (:class:`MotionMeter`).
        motion_width: Width of the grey copy motion is measured on.
        background_seconds: How fast the motion background adapts.
        lighting_area: A change over more than this share of the picture is light, not motion.
        zones: The camera's zones (``uses: [zones]``), for ``masks``.
        masks: Zone names where motion never counts (screens, a door to the street).
        frame_size: ``[width, height]`` the zones were drawn on.

    Raises:
        ConfigError: a negative rate or time, or shares outside 0-1.
    """

    needs_video = True  # judges pixels: in a replay of the track cache the analysed frames are what is stored
    every_frame = True  # it decides for every frame

    def __init__(self, fps: float | None = 5.0, motion: bool = True, keepalive_seconds: float = 1.0,
                 motion_area: float = 0.002, motion_threshold: float = 15.0, motion_width: int = 160,
                 background_seconds: float = 2.0, lighting_area: float = 0.5,
                 zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None, masks: Sequence[str] = (),
                 frame_size: Sequence[int] | None = None) -> None:
        if fps is not None and fps < 0:
            raise ConfigError(f"detect.fps must be positive, 0 or null (every frame), got {fps}")
        if not keepalive_seconds > 0 or not background_seconds > 0:
            raise ConfigError(f"detect.keepalive_seconds and detect.background_seconds must be > 0, "
                              f"got {keepalive_seconds} and {background_seconds}")
        for name, share in (("motion_area", motion_area), ("lighting_area", lighting_area)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"detect.{name} must be a share between 0 and 1, got {share}")
        if motion_width < 16:
            raise ConfigError(f"detect.motion_width must be at least 16 px, got {motion_width}")
        self.interval = 1.0 / fps if fps else 0.0
        self.motion, self.keepalive, self.motion_area = bool(motion), float(keepalive_seconds), float(motion_area)
        self.zones = Zones.of(zones, frame_size)
        self.zones.require(masks, "filters.masks")
        self.masks = list(masks)
        self.meter = MotionMeter(motion_width, motion_threshold, background_seconds, lighting_area)
        self._video: str | None = None
        self._size: tuple[int, int] | None = None
        self._last: float | None = None  # time of the last analysed frame
        self._next = -math.inf  # when the next frame is due at the `fps` rate

    def process(self, frame: Frame) -> Frame:
        """Set ``frame.analysed``."""
        if frame.video != self._video or frame.size != self._size:
            self._start(frame)
        t = frame.timestamp
        since = math.inf if self._last is None else t - self._last
        due = t >= self._next - _EPS
        if due and self.motion and since < math.inf:
            moving = self.meter.measure(frame.image, t) >= self.motion_area
            due = moving or since >= self.keepalive - _EPS
        elif due and self.motion:
            self.meter.measure(frame.image, t)  # the first frame: the background
        frame.analysed = due
        if due:
            # Due times step by the interval, so the rate is `fps` on average also where it does not
            # divide the camera's (5 of 7.5 frames a second, not every other one: 3.75); after a pause
            # (nothing moved) the steps start again from now.
            self._next = self._next + self.interval if t - self._next < self.interval else t + self.interval
            self._last = t
        return frame

    def _start(self, frame: Frame) -> None:
        """A new video or frame size: a new background, and the first frame is analysed."""
        self._video, self._size, self._last, self._next = frame.video, frame.size, None, -math.inf
        self.meter.reset()
        if self.masks:
            self.zones.check_inside(frame.size)
            self.meter.ignore([self.zones.polygons[name] for name in self.masks], frame.size)

    def status(self) -> dict[str, float]:
        """Lighting changes seen (the frames analysed are counted by the status board)."""
        return {"lighting_changes": float(self.meter.lighting_changes)}
