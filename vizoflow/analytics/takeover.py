"""Re-identification takeover: a new track id where a track was just lost is the same person.

A tracker sometimes gives a person a new id (an occlusion, a few missed detections). A
new id appearing within ``reid_px`` pixels of where a track was last seen, less than
``reid_seconds`` before (and not on the same frame), takes that track over; the nearest
such track wins. Line counting (:class:`~vizoflow.analytics.footfall.LineCounter`) and
dwell (:class:`~vizoflow.analytics.visits.DwellMeter`) apply it to their own state, so
the same person under two ids is counted once and stays one visit.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def nearest_lost(t: float, point: Sequence[float] | None, lost: Iterable[tuple[K, float, Sequence[float] | None]],
                 reid_seconds: float, reid_px: float) -> K | None:
    """The key of the lost track a new id appearing at ``point`` at time ``t`` takes over, or None.

    Args:
        t: Clock seconds of the frame the new id appears on.
        point: Its ground point (None: unknown, no takeover).
        lost: ``(key, last seen, where last seen)`` of tracks not on this frame (the caller
            leaves out the ids present); a track with no point is skipped.
        reid_seconds: Lost at most this long ago (and more than 0) ...
        reid_px: ... and last seen at most this many pixels away. On a tie the later one wins.
    """
    if point is None:
        return None
    best, best_d = None, reid_px
    for key, seen, where in lost:
        if where is None or not 0 < t - seen <= reid_seconds:
            continue
        d = float(np.hypot(point[0] - where[0], point[1] - where[1]))
        if d <= best_d:
            best, best_d = key, d
    return best
