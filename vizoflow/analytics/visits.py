"""Occupancy per minute and visits to zones (dwell), from tracked ground points.

Occupancy counts the people whose ground point is in a zone on each frame, customers
and staff apart and together, and reduces them per minute of real time to a mean
(over that minute's frames) and a maximum. Dwell follows each track in each zone: a
visit lasts from its first frame inside to its last, and ends once the track has been
outside (or unseen) for more than ``gap_seconds``, so a flickering box or a step on
the zone's edge does not split one visit into several. A visit counts only once the
person filter trusts the track, and then from its first frame: a visit that ended
before the track was trusted is held until it is (dropped if the track is gone for
``forget_seconds`` first), so trust latency neither shortens nor loses visits, and a
rack never has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vizoflow.analytics.takeover import nearest_lost

CAMERA = "camera"  # the occupancy "zone" of everybody in view
ROLES = ("customer", "staff", "all")


@dataclass(frozen=True)
class MinuteOccupancy:
    """People in one zone during one minute (epoch ``minute`` is its first second)."""

    minute: float
    zone: str
    role: str  # customer | staff | all
    mean: float
    max: int
    frames: int


class OccupancyMeter:
    """Reduces per-frame head counts to per-minute mean and maximum, per zone and role.

    Args:
        zones: Zone names to count in (``camera`` is added: everybody in view).
    """

    def __init__(self, zones: Sequence[str]) -> None:
        self.zones = [*zones, CAMERA]
        self._minute: float | None = None
        self._sum = np.zeros((len(self.zones), len(ROLES)))
        self._max = np.zeros((len(self.zones), len(ROLES)), dtype=int)
        self._frames = 0

    def update(self, epoch: float, roles: np.ndarray, inside: Mapping[str, np.ndarray]) -> list[MinuteOccupancy]:
        """Count one frame (``roles`` per person, ``inside[zone]`` masks); returns the minutes that closed."""
        minute = float(epoch // 60 * 60)
        closed = self.flush() if self._minute is not None and minute != self._minute else []
        self._minute = minute
        staff = np.asarray(roles) == "staff"
        for z, zone in enumerate(self.zones):
            mask = np.ones(len(staff), dtype=bool) if zone == CAMERA else np.asarray(inside[zone], dtype=bool)
            counts = np.array([(mask & ~staff).sum(), (mask & staff).sum(), mask.sum()])
            self._sum[z] += counts
            self._max[z] = np.maximum(self._max[z], counts)
        self._frames += 1
        return closed

    def flush(self) -> list[MinuteOccupancy]:
        """Close the current minute (also at the end of a run)."""
        if self._minute is None or not self._frames:
            return []
        rows = [MinuteOccupancy(self._minute, zone, role, round(float(self._sum[z, r]) / self._frames, 3),
                                int(self._max[z, r]), self._frames)
                for z, zone in enumerate(self.zones) for r, role in enumerate(ROLES)]
        self._sum[:] = 0
        self._max[:] = 0
        self._frames, self._minute = 0, None
        return rows


@dataclass(frozen=True)
class Visit:
    """One track's stay in one zone, on the clock (seconds)."""

    zone: str
    track_id: int
    role: str  # the track's role when the visit ended
    start: float
    end: float
    aliases: tuple[int, ...] = ()  # earlier ids of the same person in this visit (re-identified)

    @property
    def seconds(self) -> float:
        """How long the visit lasted."""
        return self.end - self.start


@dataclass
class _Open:
    start: float
    last: float
    role: str
    trusted: bool
    point: tuple[float, float] | None = None  # where last seen
    aliases: tuple[int, ...] = ()
    before: tuple[int, float, bool] | None = None  # at a takeover: (old id, last time under it, trusted then)


class DwellMeter:
    """Visits of tracks to zones, ended after ``gap_seconds`` outside or unseen.

    A new track id that appears in a zone within ``reid_px`` of where an open visit's
    track was last seen, less than ``reid_seconds`` before, takes that visit over (the
    tracker switched ids), so an id switch does not split a visit; the visit keeps the
    earlier ids as ``aliases``. The new id must be trusted too: if it never is (an
    untrusted box, e.g. a rack, appeared where the person was lost), the visit ends at
    the handover, under the old id.

    Args:
        zones: Zone names to follow.
        gap_seconds: Time outside (or unseen) that ends a visit.
        forget_seconds: Visits held for a track not yet trusted are dropped once it is unseen this long.
        reid_seconds, reid_px: The id-switch takeover (:mod:`vizoflow.analytics.takeover`, as for line counting).
    """

    def __init__(self, zones: Sequence[str], gap_seconds: float = 2.0, forget_seconds: float = 60.0,
                 reid_seconds: float = 2.0, reid_px: float = 40.0) -> None:
        self.zones, self.gap_seconds, self.forget_seconds = list(zones), gap_seconds, forget_seconds
        self.reid_seconds, self.reid_px = reid_seconds, reid_px
        self._open: dict[tuple[str, int], _Open] = {}
        self._held: dict[int, list[Visit]] = {}  # ended visits of tracks not trusted yet
        self._trusted: set[int] = set()  # tracks trusted so far (of this video)
        self._seen: dict[int, float] = {}

    def update(self, t: float, ids: Sequence[int], roles: Sequence[str], inside: Mapping[str, np.ndarray],
               trusted: Sequence[bool] | None = None, points: np.ndarray | None = None) -> list[Visit]:
        """Feed one frame (``trusted`` per track, None: all are; ``points``: ground points, for
        the id-switch takeover); returns the visits that ended (``end``: the last moment inside)."""
        trusted = [True] * len(ids) if trusted is None else list(trusted)
        where = [None] * len(ids) if points is None else [(float(x), float(y)) for x, y in np.asarray(points)]
        present = {int(tid) for tid in ids}
        released: list[Visit] = []
        for tid, trust in zip(ids, trusted):
            self._seen[int(tid)] = t
            if trust and int(tid) not in self._trusted:
                self._trusted.add(int(tid))
                released += self._held.pop(int(tid), [])
        for zone in self.zones:
            for tid, role, here, trust, point in zip(ids, roles, inside[zone], trusted, where):
                if not here:
                    continue
                visit = self._open.get((zone, int(tid))) or self._take_over(zone, int(tid), t, point, present)
                if visit is None:
                    self._open[(zone, int(tid))] = _Open(t, t, str(role), bool(trust), point)
                else:
                    visit.last, visit.role, visit.trusted = t, str(role), visit.trusted or bool(trust)
                    visit.point = point
        for tid in [k for k, seen in self._seen.items() if t - seen > self.forget_seconds]:
            del self._seen[tid]
            self._held.pop(tid, None)
            self._trusted.discard(tid)
        return self._sorted(released + self._close(lambda v: t - v.last > self.gap_seconds))

    def _take_over(self, zone: str, tid: int, t: float, point: tuple[float, float] | None,
                   present: set[int]) -> _Open | None:
        """The open visit in ``zone`` of a track lost just now near ``point`` (re-identified as ``tid``)."""
        lost = ((old, v.last, v.point) for (z, old), v in self._open.items() if z == zone and old not in present)
        best = nearest_lost(t, point, lost, self.reid_seconds, self.reid_px)
        if best is None:
            return None
        visit = self._open.pop((zone, best))
        visit.before = (best, visit.last, visit.trusted or best in self._trusted)
        visit.aliases, visit.trusted = (*visit.aliases, best), False  # the new id has to prove itself a person
        if best in self._held:  # visits the old id made before it was trusted follow the person
            self._held.setdefault(tid, []).extend(self._held.pop(best))
        self._open[(zone, tid)] = visit
        return visit

    def aliases(self, ids: Sequence[int]) -> set[int]:
        """The earlier ids of the people ``ids`` in their open visits (re-identified)."""
        present = {int(i) for i in ids}
        return {a for (_, tid), v in self._open.items() if tid in present for a in v.aliases}

    def flush(self) -> list[Visit]:
        """End every open visit (end of the run, or of a video); held visits of untrusted tracks go."""
        visits = self._close(lambda v: True)
        self._held.clear()
        self._trusted.clear()
        self._seen.clear()
        return self._sorted(visits)

    def _close(self, done) -> list[Visit]:
        ended = [(key, v) for key, v in self._open.items() if done(v)]
        counted = []
        for (zone, tid), v in ended:
            del self._open[(zone, tid)]
            visit = Visit(zone, tid, v.role, v.start, v.last, v.aliases)
            if v.trusted or tid in self._trusted:
                counted.append(visit)
            elif v.before is not None and v.before[2]:  # the taker never proved a person: up to the handover
                old, last, _ = v.before
                counted.append(Visit(zone, old, v.role, v.start, last, v.aliases[:-1]))
            else:
                self._held.setdefault(tid, []).append(visit)
        return counted

    @staticmethod
    def _sorted(visits: list[Visit]) -> list[Visit]:
        return sorted(visits, key=lambda v: (v.start, v.zone, v.track_id))
