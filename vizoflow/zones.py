"""Named polygon zones of a site, validated once and shared by nodes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError

log = logging.getLogger(__name__)

ASPECT_TOLERANCE = 0.01  # relative difference of width/height below which zones are scaled


class Zones:
    """Polygons in image pixels, by name (``counter``, ``store``, ``queue`` ...).

    A site records the frame size its zones were drawn on (``frame_size: [w, h]``).
    On a frame of another size (:meth:`check_inside`, called by nodes on each new
    video), the zones are scaled to it when the aspect ratio matches within
    ``aspect_tolerance`` (logged once per size), and refused otherwise: drawn on a
    4:3 frame, they do not describe a 16:9 one. Without a drawn size, zones are used
    as they are and only refused when they reach outside the frame.

    Args:
        polygons: Name to a list of ``[x, y]`` points (at least 3).
        drawn_size: ``(width, height)`` of the frames the zones were drawn on; None: unknown.
        aspect_tolerance: Largest relative aspect-ratio difference that is scaled.

    Raises:
        ConfigError: a polygon or the drawn size is malformed; names the zone.
    """

    def __init__(self, polygons: Mapping[str, Sequence[Sequence[float]]] | None,
                 drawn_size: Sequence[int] | None = None, aspect_tolerance: float = ASPECT_TOLERANCE) -> None:
        self._drawn: dict[str, np.ndarray] = {}
        for name, points in (polygons or {}).items():
            try:
                poly = np.asarray(points, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError(f"zone '{name}': points must be [[x, y], ...] numbers, got {points!r}") from None
            if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
                raise ConfigError(f"zone '{name}': need at least 3 [x, y] points, got {points!r}")
            self._drawn[str(name)] = poly
        self.drawn_size: tuple[int, int] | None = None
        if drawn_size is not None:
            try:
                w, h = (int(v) for v in drawn_size)
            except (TypeError, ValueError):
                raise ConfigError(f"frame_size must be [width, height], got {drawn_size!r}") from None
            if w <= 0 or h <= 0:
                raise ConfigError(f"frame_size must be positive [width, height], got {drawn_size!r}")
            self.drawn_size = (w, h)
        self.aspect_tolerance = aspect_tolerance
        self.frame_size: tuple[int, int] | None = None  # the size the polygons are in now (None: as drawn)
        self.polygons: dict[str, np.ndarray] = {n: p.astype(np.int32) for n, p in self._drawn.items()}
        self._zones: dict[str, sv.PolygonZone] = {}

    @classmethod
    def of(cls, zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None,
           drawn_size: Sequence[int] | None = None) -> Zones:
        """``zones`` itself when it is already :class:`Zones`, else zones built from polygons.

        A camera's nodes share one :class:`Zones` (graph entries with ``uses: [zones]``),
        so the zones are validated, scaled and logged once per camera, not once per node;
        a node built by hand may still pass plain polygons.
        """
        return zones if isinstance(zones, Zones) else cls(zones, drawn_size=drawn_size)

    def __iter__(self):
        return iter(self.polygons.items())

    def __len__(self) -> int:
        return len(self.polygons)

    def check_inside(self, frame_size: tuple[int, int]) -> None:
        """Fit the zones to a ``(width, height)`` frame, or raise :class:`ConfigError`.

        Call it whenever the frame size may have changed (each new video, a camera
        reconnect; a call on an unchanged size returns at once): zones drawn on another
        size are scaled from the drawn polygons, so going back and forth never
        accumulates rounding. Refused: another aspect ratio
        (one line naming both sizes), or a zone reaching outside the frame, which is
        almost always a zone meant for another camera.
        """
        w, h = int(frame_size[0]), int(frame_size[1])
        if (w, h) == self.frame_size:
            return  # fitted and checked already: cheap enough to call on every frame
        self._fit(w, h)
        for name, poly in self.polygons.items():
            if (poly < 0).any() or (poly[:, 0] > w).any() or (poly[:, 1] > h).any():
                self.frame_size = None  # not usable on this frame: checked again next time
                raise ConfigError(f"zone '{name}': points {poly.tolist()} fall outside the {w}x{h} frame")

    def _fit(self, w: int, h: int) -> None:
        """Set ``polygons`` for a ``w x h`` frame (scaled from the drawn size when known)."""
        if self.drawn_size is None or self.drawn_size == (w, h) or not self._drawn:
            sx = sy = 1.0
        else:
            dw, dh = self.drawn_size
            drawn_ratio, ratio = dw / dh, w / h
            if abs(ratio / drawn_ratio - 1) > self.aspect_tolerance:
                raise ConfigError(f"zones were drawn on {dw}x{dh} frames (frame_size), but this video is {w}x{h}, "
                                  f"another aspect ratio ({ratio:.3f} vs {drawn_ratio:.3f}): redraw the zones for it")
            sx, sy = w / dw, h / dh
            log.warning("zones drawn on %dx%d frames are scaled to this %dx%d video (x%.3f, x%.3f)",
                        dw, dh, w, h, sx, sy)
        if sx == sy == 1.0:
            self.polygons = {n: p.astype(np.int32) for n, p in self._drawn.items()}
        else:
            self.polygons = {n: np.rint(p * (sx, sy)).astype(np.int32) for n, p in self._drawn.items()}
        self._zones.clear()  # rebuilt lazily from the new polygons
        self.frame_size = (w, h)

    def require(self, names: Sequence[str], what: str) -> None:
        """Raise :class:`ConfigError` unless every name is a defined zone."""
        for name in names:
            if name not in self.polygons:
                raise ConfigError(f"{what}: zone '{name}' is not defined (zones: {', '.join(self.polygons) or 'none'})")

    def contains(self, name: str, detections: sv.Detections) -> np.ndarray:
        """Boolean mask: whose ground point (bottom centre) lies in zone ``name``."""
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = sv.PolygonZone(self.polygons[name], triggering_anchors=(sv.Position.BOTTOM_CENTER,))
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        return zone.trigger(detections)
