"""Footfall: people crossing counting lines, in and out, each crossing once.

Direction: walking along a line from its first point to its second as drawn on the
image, ``in`` is a crossing from your left-hand side to your right-hand side, ``out``
the other way. For a line drawn left to right across the image, ``in`` is walking
down the image (towards the camera, usually); swap the two points to swap in and out.

Three things make naive line counts double count (supervision issues #2598, #2578),
and each is handled here:

* **hesitation** on the line: a side counts only once the ground point is ``margin``
  pixels or more away from the line (hysteresis), so wavering on it counts nothing;
* **flicker**: a track that vanishes for a few frames keeps its side;
* **re-identification under a new id**: a new track appearing within ``reid_px`` of
  where a track was lost less than ``reid_seconds`` before takes over its side, so the
  same person crossing under two ids counts once (:mod:`vizoflow.analytics.takeover`).

A crossing counts only where the ground point passes within the line's length (its
projection on the segment, with ``margin`` of slack at the ends), and only for a track
the person filter trusts: a crossing made before the track was trusted is held and
counted (with its own time) once it is, so trust latency loses no crossing and a rack
never counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vizoflow.analytics.takeover import nearest_lost
from vizoflow.errors import ConfigError

IN, OUT = "in", "out"


@dataclass(frozen=True)
class Crossing:
    """One person crossing one line."""

    line: str
    track_id: int
    direction: str  # in | out
    t: float  # clock seconds


@dataclass
class _Side:
    side: int  # +1 right of the line (in side), -1 left, 0 not yet known
    seen: float  # clock seconds last seen
    point: tuple[float, float]  # where last seen (a re-identified person appears near it)
    anchor: tuple[float, float]  # where last on a side (a crossing runs from here)
    trusted: bool = False
    held: list[Crossing] = field(default_factory=list)  # crossings made before the track was trusted


class Line:
    """A counting line: the signed distance of points to it and whether they pass within it."""

    def __init__(self, name: str, points: Sequence[Sequence[float]]) -> None:
        try:
            a, b = (np.asarray(p, dtype=float) for p in points)
        except (TypeError, ValueError):
            raise ConfigError(f"line '{name}': need two [x, y] points, got {points!r}") from None
        if a.shape != (2,) or b.shape != (2,) or np.allclose(a, b):
            raise ConfigError(f"line '{name}': need two distinct [x, y] points, got {points!r}")
        self.name, self.a, self.b = name, a, b
        self.length = float(np.linalg.norm(b - a))
        self.unit = (b - a) / self.length

    def signed_distance(self, p: np.ndarray) -> float:
        """Pixels from the line; positive on the right-hand side walking from the first point to the second."""
        d = p - self.a
        return float(self.unit[0] * d[1] - self.unit[1] * d[0])

    def along(self, p: np.ndarray) -> float:
        """Position of ``p``'s projection along the line, in pixels from the first point."""
        return float(np.dot(p - self.a, self.unit))


class LineCounter:
    """Counts crossings of every line by tracked ground points, incrementally.

    Args:
        lines: Name to ``[[x1, y1], [x2, y2]]`` in image pixels.
        margin: Pixels a ground point must be from the line to be on a side.
        reid_seconds: A track lost this recently can be taken over by a new id ...
        reid_px: ... appearing within this many pixels of where it was last seen.
        forget_seconds: Tracks unseen this long are forgotten (memory stays flat live).
    """

    def __init__(self, lines: Mapping[str, Sequence[Sequence[float]]], margin: float = 10.0,
                 reid_seconds: float = 2.0, reid_px: float = 40.0, forget_seconds: float = 60.0) -> None:
        self.lines = [Line(str(name), pts) for name, pts in (lines or {}).items()]
        self.margin, self.reid_seconds, self.reid_px, self.forget_seconds = margin, reid_seconds, reid_px, forget_seconds
        self._state: dict[str, dict[int, _Side]] = {line.name: {} for line in self.lines}

    def reset(self) -> None:
        """Forget every track (another video: its ids are other people)."""
        self._state = {line.name: {} for line in self.lines}

    def update(self, t: float, ids: Sequence[int], points: np.ndarray,
               trusted: Sequence[bool] | None = None) -> list[Crossing]:
        """Feed one frame (clock seconds, track ids, ``(N, 2)`` ground points, whether each
        track is trusted; None: all are); returns the crossings counted now."""
        crossings: list[Crossing] = []
        trusted = [True] * len(ids) if trusted is None else list(trusted)
        for line in self.lines:
            state = self._state[line.name]
            present = set(ids)
            for tid, p, trust in zip(ids, np.asarray(points, dtype=float), trusted):
                d = line.signed_distance(p)
                side = 1 if d >= self.margin else -1 if d <= -self.margin else 0
                known = state.get(tid) or self._take_over(state, present, t, p)
                here = (float(p[0]), float(p[1]))
                if known is None:
                    state[tid] = _Side(side, t, here, here, bool(trust))
                    continue
                state[tid] = known
                if trust and not known.trusted:  # trusted now: the crossings it made before count
                    known.trusted = True
                    crossings += [Crossing(c.line, int(tid), c.direction, c.t) for c in known.held]
                    known.held.clear()
                if side and known.side and side != known.side and self._within(line, known.anchor, p):
                    crossing = Crossing(line.name, int(tid), IN if side > 0 else OUT, t)
                    (crossings if known.trusted else known.held).append(crossing)
                if side:
                    known.side, known.anchor = side, here
                known.seen, known.point = t, here
            for tid in [k for k, s in state.items() if t - s.seen > self.forget_seconds]:
                del state[tid]
        return crossings

    def _take_over(self, state: dict[int, _Side], present: set[int], t: float, p: np.ndarray) -> _Side | None:
        """The side of a recently lost track near ``p`` (a re-identified person), removed from the lost ones."""
        lost = ((tid, s.seen, s.point) for tid, s in state.items() if tid not in present)
        best = nearest_lost(t, p, lost, self.reid_seconds, self.reid_px)
        return state.pop(best) if best is not None else None

    def _within(self, line: Line, before: tuple[float, float], after: np.ndarray) -> bool:
        """Whether the way from ``before`` (on one side) to ``after`` (on the other) meets the line
        within its length (plus margin)."""
        b = np.asarray(before)
        db, da = line.signed_distance(b), line.signed_distance(after)
        w = db / (db - da)  # where the way meets the line (the two are on opposite sides)
        crossing = b + w * (after - b)
        return -self.margin <= line.along(crossing) <= line.length + self.margin
