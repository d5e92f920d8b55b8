"""Named polygon zones of a site, validated once and shared by nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError


class Zones:
    """Polygons in image pixels, by name (``counter``, ``store``, ``queue`` ...).

    Args:
        polygons: Name to a list of ``[x, y]`` points (at least 3).

    Raises:
        ConfigError: a polygon is malformed; names the zone.
    """

    def __init__(self, polygons: Mapping[str, Sequence[Sequence[float]]] | None) -> None:
        self.polygons: dict[str, np.ndarray] = {}
        for name, points in (polygons or {}).items():
            try:
                poly = np.asarray(points, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError(f"zone '{name}': points must be [[x, y], ...] numbers, got {points!r}") from None
            if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
                raise ConfigError(f"zone '{name}': need at least 3 [x, y] points, got {points!r}")
            self.polygons[str(name)] = poly.astype(np.int32)
        self._zones: dict[str, sv.PolygonZone] = {}

    def __iter__(self):
        return iter(self.polygons.items())

    def __len__(self) -> int:
        return len(self.polygons)

    def check_inside(self, frame_size: tuple[int, int]) -> None:
        """Raise :class:`ConfigError` if a zone reaches outside a ``(width, height)`` frame.

        Zones are drawn on one camera's frames; a polygon outside them is almost always
        a zone meant for another camera or resolution.
        """
        w, h = frame_size
        for name, poly in self.polygons.items():
            if (poly < 0).any() or (poly[:, 0] > w).any() or (poly[:, 1] > h).any():
                raise ConfigError(f"zone '{name}': points {poly.tolist()} fall outside the {w}x{h} frame")

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
