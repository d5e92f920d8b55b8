"""A user's own node for the benchmarks: people on tracks inside one polygon, per frame."""

from __future__ import annotations

import numpy as np
import supervision as sv

from vizoflow.frame import Frame


class ZoneCount:
    """Counts tracked people whose feet are in ``polygon``; the same work as bench/baseline.py.

    Args:
        polygon: ``[[x, y], ...]`` in image pixels.
    """

    def __init__(self, polygon: list[list[float]]) -> None:
        self._zone = sv.PolygonZone(polygon=np.asarray(polygon, dtype=np.int32),
                                    triggering_anchors=(sv.Position.BOTTOM_CENTER,))
        self.max_in_zone = 0
        self.frames: set[int] = set()  # the frames it saw: those the detector looked at

    def process(self, frame: Frame) -> Frame:
        """Count this frame's tracked people in the zone."""
        self.frames.add(frame.index)
        self.max_in_zone = max(self.max_in_zone, int(self._zone.trigger(frame.detections).sum()))
        return frame
