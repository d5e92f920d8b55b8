"""Who is staff: a track that spends long enough in a staff zone (behind the counter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vizoflow.frame import Frame
from vizoflow.zones import Zones

STAFF, CUSTOMER = "staff", "customer"


class ZoneRoles:
    """Label every tracked person ``staff`` or ``customer`` in ``detections.data["role"]``.

    A track becomes staff once it has spent ``min_seconds`` (on the frame clock, summed
    over its visits) with its ground point in any staff zone, and stays staff. Time
    between two sightings counts only up to ``max_step`` seconds, so a stalled stream
    does not make someone staff.

    A role is known only after ``min_seconds``: until then a cashier is a customer.
    Rules do not lose that time: they keep every candidate from the moment its
    condition held and start the event once the roles fit (see
    :mod:`vizoflow.nodes.rules`). Which tracks are people at all is
    :class:`~vizoflow.nodes.filters.PersonFilter`'s job.

    Args:
        zones: The camera's zones (:class:`Zones`, shared by its nodes, or name to polygon).
        staff_zones: Names of the zones where only staff go.
        min_seconds: Time in staff zones that makes a track staff.
        max_step: Longest gap between sightings that still counts as time in a zone.
        forget_seconds: Tracks unseen this long are forgotten, so memory stays flat live.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    def __init__(self, zones: Zones | Mapping[str, Sequence[Sequence[float]]], staff_zones: Sequence[str] = (),
                 min_seconds: float = 5.0, max_step: float = 1.0,
                 forget_seconds: float = 300.0, frame_size: Sequence[int] | None = None) -> None:
        self.zones = Zones.of(zones, frame_size)
        self.zones.require(staff_zones, "roles.staff_zones")
        self.staff_zones = list(staff_zones)
        self.min_seconds = min_seconds
        self.max_step = max_step
        self.forget_seconds = forget_seconds
        self._video: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._staff_time: dict[int, float] = {}
        self._last_seen: dict[int, float] = {}
        self._staff: set[int] = set()

    def process(self, frame: Frame) -> Frame:
        """Set ``detections.data["role"]`` for this frame's tracks."""
        self.zones.check_inside(frame.size)  # every frame: a live camera may come back at another size
        if frame.video != self._video:
            self._video = frame.video
            self._reset()
        det = frame.detections
        if det.tracker_id is None or len(det) == 0:
            det.data["role"] = np.array([], dtype="<U8")
            return frame
        inside = np.zeros(len(det), dtype=bool)
        for name in self.staff_zones:
            inside |= self.zones.contains(name, det)
        roles = []
        for i, tid in enumerate(det.tracker_id.tolist()):
            last = self._last_seen.get(tid)
            self._last_seen[tid] = frame.timestamp
            if inside[i] and last is not None:
                self._staff_time[tid] = self._staff_time.get(tid, 0.0) + min(frame.timestamp - last, self.max_step)
            if self._staff_time.get(tid, 0.0) >= self.min_seconds - 1e-9:
                self._staff.add(tid)
            roles.append(STAFF if tid in self._staff else CUSTOMER)
        det.data["role"] = np.array(roles, dtype="<U8")
        self._forget(frame.timestamp)
        return frame

    def _forget(self, now: float) -> None:
        """Drop state of tracks not seen for ``forget_seconds``."""
        stale = [tid for tid, seen in self._last_seen.items() if now - seen > self.forget_seconds]
        for tid in stale:
            for table in (self._staff_time, self._last_seen):
                table.pop(tid, None)
            self._staff.discard(tid)
