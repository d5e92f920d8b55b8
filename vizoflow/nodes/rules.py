"""Retail rules: interaction, unattended customer, queue.

Each rule turns per-frame observations ("staff 3 is within 1.5 m of customer 7")
into events with one ``start``, optional periodic ``update`` and one ``end``. The
debouncing is shared (:class:`EpisodeTracker`): a condition must hold for
``min_seconds`` before an event starts, and gaps up to ``gap_seconds`` (occlusion,
missed detections, a stalled stream) do not split it. All times come from
``frame.timestamp``, so a clip gives the same events read as a file or streamed.

Evidence arrives late: a track is known to be staff only after ``staff.min_seconds``
behind the counter, and a person only once :class:`~vizoflow.nodes.filters.PersonFilter`
trusts it. Rules therefore follow every candidate from the moment its condition held
and mark an observation ``ready`` once roles and trust fit; an event starts when it is
ready and has held long enough, with ``started_at`` the moment it first held. A cashier
recognised at 5 s who stood by a customer from 0 s gives an interaction from 0 s.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.events import Box, Event, EventKind
from vizoflow.frame import Frame
from vizoflow.geometry import FloorMap, ground_points
from vizoflow.nodes.roles import CUSTOMER, STAFF
from vizoflow.zones import Zones

EPS = 1e-6  # timestamps are sums of 1/fps: compare thresholds with a little slack


@dataclass(frozen=True, slots=True)
class Observation:
    """What a rule sees of one candidate on one frame while its condition holds."""

    ids: tuple[int, ...]
    boxes: tuple[Box, ...]
    confidence: float
    ready: bool = True  # roles and trust fit: the event may start (see the module docstring)


@dataclass(slots=True)
class Episode:
    """A candidate whose condition holds (possibly with short gaps)."""

    first: float
    last: float
    start_obs: Observation
    conf_sum: float = 0.0
    conf_n: int = 0
    started: bool = False
    last_emit: float = 0.0
    seen: dict[int, list[float]] = field(default_factory=dict)  # id -> [first, last] time seen
    max_size: int = 0

    def add(self, t: float, obs: Observation) -> None:
        self.last = t
        self.conf_sum += obs.confidence
        self.conf_n += 1
        self.max_size = max(self.max_size, len(obs.ids))
        for tid in obs.ids:
            span = self.seen.setdefault(tid, [t, t])
            span[1] = t


class EpisodeTracker:
    """Debounce per-candidate conditions into start/update/end events.

    Args:
        kind: Event kind to emit.
        min_seconds: How long the condition must hold before the event starts.
        gap_seconds: Longest interruption that does not end the event.
        update_seconds: Emit an ``update`` this often while active (None: never).
        strict: Start only when held *more* than ``min_seconds`` (else at least).
    """

    def __init__(self, kind: EventKind, min_seconds: float, gap_seconds: float,
                 update_seconds: float | None = None, strict: bool = False) -> None:
        if min_seconds < 0 or gap_seconds < 0:
            raise ConfigError(f"{kind}: min_seconds and gap_seconds must be >= 0, got {min_seconds}, {gap_seconds}")
        self.kind = kind
        self.min_seconds = min_seconds
        self.gap_seconds = gap_seconds
        self.update_seconds = update_seconds
        self.strict = strict
        self.episodes: dict[Hashable, Episode] = {}

    def _due(self, held: float) -> bool:
        return held > self.min_seconds + EPS if self.strict else held >= self.min_seconds - EPS

    def step(self, frame: Frame, observed: Mapping[Hashable, Observation]) -> list[Event]:
        """Advance to ``frame.timestamp`` with the candidates whose condition holds now."""
        t = frame.timestamp
        events = [self._event(frame, key, ep, "end") for key, ep in self._expire(t)]
        for key, obs in observed.items():
            ep = self.episodes.get(key)
            if ep is None:
                ep = self.episodes[key] = Episode(first=t, last=t, start_obs=obs)
            ep.add(t, obs)
            if not ep.started and obs.ready and self._due(ep.last - ep.first):
                ep.started, ep.last_emit, ep.start_obs = True, t, obs
                events.append(self._event(frame, key, ep, "start"))
            elif ep.started and self.update_seconds and t - ep.last_emit >= self.update_seconds - EPS:
                ep.last_emit = t
                events.append(self._event(frame, key, ep, "update"))
        return events

    def _expire(self, t: float) -> list[tuple[Hashable, Episode]]:
        gone = [(k, ep) for k, ep in self.episodes.items() if t - ep.last > self.gap_seconds + EPS]
        for key, _ in gone:
            del self.episodes[key]
        return [(k, ep) for k, ep in gone if ep.started]

    def finish(self, frame: Frame) -> list[Event]:
        """End every active event (end of stream, or the source moved to another video)."""
        events = [self._event(frame, key, ep, "end") for key, ep in self.episodes.items() if ep.started]
        self.episodes.clear()
        return events

    def _event(self, frame: Frame, key: Hashable, ep: Episode, phase: str) -> Event:
        stamp = datetime.fromtimestamp(frame.epoch + ep.first, tz=timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        name = str(key) if self.kind == "queue" else "-".join(str(i) for i in ep.start_obs.ids)
        details: dict[str, object] = {}
        if self.kind == "queue":
            details = {"max_length": ep.max_size,
                       "waits": {str(tid): round(b - a, 3) for tid, (a, b) in sorted(ep.seen.items())}}
        elif self.kind == "unattended":
            details = {"waiting_time": round(ep.last - ep.first, 3)}
        ids = ep.start_obs.ids if self.kind != "queue" else tuple(sorted(ep.seen))
        camera = f"{frame.camera}-" if frame.camera else ""  # several cameras: ids name theirs
        return Event(kind=self.kind, phase=phase, event_id=f"{self.kind}-{camera}{stamp}-{name}",  # type: ignore[arg-type]
                     camera=frame.camera or frame.video, track_ids=ids, boxes=ep.start_obs.boxes,
                     confidence=ep.conf_sum / max(ep.conf_n, 1), started_at=ep.first,
                     duration=ep.last - ep.first, epoch=frame.epoch, details=details)


class _Rule:
    """Shared plumbing: restart on a new video, end everything at end of stream."""

    tracker: EpisodeTracker

    zones: Zones | None = None

    def __init__(self) -> None:
        self._video: str | None = None
        self._last: Frame | None = None

    def observe(self, frame: Frame) -> Mapping[Hashable, Observation]:
        raise NotImplementedError

    def process(self, frame: Frame) -> Frame:
        """Append this frame's events to ``frame.events``."""
        if self.zones is not None:
            self.zones.check_inside(frame.size)  # every frame: a live camera may come back at another size
        if frame.video != self._video:
            if self._last is not None:
                frame.events.extend(self.tracker.finish(self._last))
            self._video = frame.video
        self._last = frame
        frame.events.extend(self.tracker.step(frame, self.observe(frame)))
        return frame

    def finish(self, frame: Frame) -> Frame:
        """End open events at the end of the stream (``frame`` is the last frame seen)."""
        frame.events.extend(self.tracker.finish(frame))
        return frame

    def status(self) -> dict[str, float]:
        """Open (started, not yet ended) events, for the live status line."""
        return {"open_events": sum(ep.started for ep in self.tracker.episodes.values())}


def _roles(det: sv.Detections) -> np.ndarray:
    """Each track's role (everyone is a customer when no roles node ran)."""
    roles = det.data.get("role")
    return np.asarray(roles) if roles is not None else np.full(len(det), CUSTOMER)


def _trusted(det: sv.Detections) -> np.ndarray:
    """Whether each track is trusted to be a person (everyone, when no filter node ran)."""
    trusted = det.data.get("trusted")
    return np.asarray(trusted, dtype=bool) if trusted is not None else np.ones(len(det), dtype=bool)


def _tracked(frame: Frame) -> sv.Detections:
    det = frame.detections
    return det if det.tracker_id is not None else sv.Detections.empty()  # untracked (no tracker in the graph): nobody


def _people(frame: Frame, role: str) -> sv.Detections:
    """Tracks with ``role``, trusted or not yet (rules decide when trust is needed)."""
    det = _tracked(frame)
    if len(det) == 0:
        return det
    mask = _roles(det) == role
    return det if mask.all() else det[mask]  # slicing Detections is slow; most frames need none


def _box(det: sv.Detections, i: int) -> Box:
    return tuple(round(float(v), 1) for v in det.xyxy[i])  # type: ignore[return-value]


def _conf(det: sv.Detections, idx: Sequence[int]) -> float:
    return float(np.mean(det.confidence[list(idx)])) if det.confidence is not None else 1.0


class InteractionRule(_Rule):
    """Staff and customer standing within ``max_distance`` for at least ``min_seconds``.

    Every pair of tracks standing close is followed, whatever their roles, so that an
    interaction begins when the two first stood together even if the cashier was
    recognised as staff later; it starts once one is staff, the other a customer, and
    both are trusted people. ``track_ids`` are ``(staff, customer)``.

    At a checkout, distance alone misleads: the cashier of the next lane stands back to
    back with this lane's customers, closer than this lane's own cashier. ``pairs``
    names, per staff zone, the customer zone it serves (``{cashier_1: lane_1}``); with
    it, only a staff member in a paired staff zone and a customer in its customer zone
    (and within ``max_distance``) interact.

    Args:
        max_distance: Ground-point distance, pixels, or metres with ``calibration``.
        min_seconds: Time close together before it counts as an interaction.
        gap_seconds: Interruptions up to this long do not split an interaction.
        update_seconds: Periodic ``update`` events while it lasts (None: off).
        calibration: Optional floor calibration, see :class:`~vizoflow.geometry.FloorMap`.
        zones: The site's zones (needed with ``pairs``).
        pairs: Staff zone to the customer zone it serves; None: anywhere within ``max_distance``.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    def __init__(self, max_distance: float = 120.0, min_seconds: float = 3.0, gap_seconds: float = 2.0,
                 update_seconds: float | None = None, calibration: Mapping[str, Sequence[Sequence[float]]] | None = None,
                 zones: Mapping[str, Sequence[Sequence[float]]] | None = None, pairs: Mapping[str, str] | None = None,
                 frame_size: Sequence[int] | None = None) -> None:
        super().__init__()
        if max_distance <= 0:
            raise ConfigError(f"interaction.max_distance must be > 0, got {max_distance}")
        if pairs:
            self.zones = Zones(zones, drawn_size=frame_size)
            self.zones.require([*pairs.keys(), *pairs.values()], "interaction.pairs")
        self.pairs = dict(pairs or {})
        self.max_distance = max_distance
        self.floor = FloorMap(calibration)
        self.tracker = EpisodeTracker("interaction", min_seconds, gap_seconds, update_seconds)

    def observe(self, frame: Frame) -> dict[Hashable, Observation]:
        people = _tracked(frame)
        if len(people) < 2:
            return {}
        roles, trusted, ids = _roles(people), _trusted(people), people.tracker_id.tolist()
        points = self.floor.to_floor(ground_points(people.xyxy))
        close = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2) <= self.max_distance
        if self.pairs:
            close &= self._paired(people)
        out: dict[Hashable, Observation] = {}
        for i, j in zip(*np.nonzero(np.triu(close, k=1))):
            if roles[i] == CUSTOMER and roles[j] == STAFF or ids[j] < ids[i] and roles[i] == roles[j]:
                i, j = j, i  # (staff, customer) once roles fit, else by id: one key per pair
            ready = bool(roles[i] == STAFF and roles[j] == CUSTOMER and trusted[i] and trusted[j])
            out[tuple(sorted((ids[i], ids[j])))] = Observation(
                (ids[i], ids[j]), (_box(people, i), _box(people, j)), _conf(people, [i, j]), ready)
        return out


    def _paired(self, people: sv.Detections) -> np.ndarray:
        """``(N, N)`` symmetric: one of the two stands in a staff zone, the other in the zone it serves."""
        paired = np.zeros((len(people), len(people)), dtype=bool)
        for staff_zone, customer_zone in self.pairs.items():
            a, b = self.zones.contains(staff_zone, people), self.zones.contains(customer_zone, people)
            paired |= a[:, None] & b[None, :]
        return paired | paired.T


class UnattendedRule(_Rule):
    """A customer in ``zone`` with no staff within ``staff_distance`` for more than ``seconds``.

    Ends when staff comes near or the customer leaves (after ``gap_seconds``); the
    event's ``details.waiting_time`` is how long the customer waited, counted from when
    the customer was first seen alone, also before the track was trusted.

    Args:
        zones: The site's zones.
        zone: Zone the customer must be in (None: anywhere in the frame).
        seconds: Waiting time before the customer counts as unattended.
        staff_distance: A staff member this close attends the customer (pixels, or metres).
        gap_seconds: Interruptions up to this long do not split the wait.
        update_seconds: Periodic ``update`` events (None: off).
        calibration: Optional floor calibration.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    def __init__(self, zones: Mapping[str, Sequence[Sequence[float]]] | None = None, zone: str | None = None,
                 seconds: float = 30.0, staff_distance: float = 200.0, gap_seconds: float = 2.0,
                 update_seconds: float | None = None, calibration: Mapping[str, Sequence[Sequence[float]]] | None = None,
                 frame_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.zones = Zones(zones, drawn_size=frame_size)
        if zone is not None:
            self.zones.require([zone], "unattended.zone")
        self.zone = zone
        self.staff_distance = staff_distance
        self.floor = FloorMap(calibration)
        self.tracker = EpisodeTracker("unattended", seconds, gap_seconds, update_seconds, strict=True)

    def observe(self, frame: Frame) -> dict[Hashable, Observation]:
        customers, staff = _people(frame, CUSTOMER), _people(frame, STAFF)
        if self.zone is not None and len(customers):
            customers = customers[self.zones.contains(self.zone, customers)]
        if len(customers) == 0:
            return {}
        pc = self.floor.to_floor(ground_points(customers.xyxy))
        alone = np.ones(len(customers), dtype=bool)
        if len(staff):
            ps = self.floor.to_floor(ground_points(staff.xyxy))
            alone = np.linalg.norm(pc[:, None, :] - ps[None, :, :], axis=2).min(axis=1) > self.staff_distance
        trusted = _trusted(customers)
        return {int(customers.tracker_id[i]): Observation((int(customers.tracker_id[i]),), (_box(customers, i),),
                                                          _conf(customers, [i]), bool(trusted[i]))
                for i in np.flatnonzero(alone)}


class QueueRule(_Rule):
    """At least ``min_people`` customers in a queue zone for at least ``min_seconds``.

    Each queue zone (one per checkout lane, say) is its own queue with its own events,
    named by the zone. The event carries ``details.max_length`` and ``details.waits``
    (seconds each customer was seen in the queue during the event). A queue starts once
    ``min_people`` trusted people are in it, dated from when that many people first
    stood there; a rack in the queue zone never makes a queue nor joins its ids.

    Args:
        zones: The site's zones.
        zone: The queue zone, or a list of them; None switches the rule off.
        min_people: Customers needed to call it a queue (at a till, the zone holds the
            customer being served too).
        min_seconds: How long the queue must last.
        gap_seconds: Dips below ``min_people`` up to this long do not end it.
        update_seconds: Periodic ``update`` events (None: off).
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    def __init__(self, zones: Mapping[str, Sequence[Sequence[float]]], zone: str | Sequence[str] | None = "queue",
                 min_people: int = 3, min_seconds: float = 10.0, gap_seconds: float = 3.0,
                 update_seconds: float | None = None, frame_size: Sequence[int] | None = None) -> None:
        super().__init__()
        if min_people < 1:
            raise ConfigError(f"queue.min_people must be >= 1, got {min_people}")
        self.zones = Zones(zones, drawn_size=frame_size)
        self.queues = [] if zone is None else [zone] if isinstance(zone, str) else list(zone)
        self.zones.require(self.queues, "queue.zone")
        self.min_people = min_people
        self.tracker = EpisodeTracker("queue", min_seconds, gap_seconds, update_seconds)

    def observe(self, frame: Frame) -> dict[Hashable, Observation]:
        if not self.queues:
            return {}
        customers = _people(frame, CUSTOMER)  # trusted or not yet: a queue begins when the people arrived
        out: dict[Hashable, Observation] = {}
        if len(customers) < self.min_people:
            return out
        trusted = _trusted(customers)
        for name in self.queues:
            inside = self.zones.contains(name, customers)
            if inside.sum() < self.min_people:
                continue
            idx = np.flatnonzero(inside & trusted).tolist()  # racks never join a queue's ids
            conf = _conf(customers, idx or np.flatnonzero(inside).tolist())
            out[name] = Observation(tuple(int(customers.tracker_id[i]) for i in idx),
                                    tuple(_box(customers, i) for i in idx), conf, len(idx) >= self.min_people)
        return out
