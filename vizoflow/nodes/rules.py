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
and mark an observation ``ready`` once roles and trust fit; an event starts once it has
been ready and has held long enough, with ``started_at`` the moment it first held. A
cashier recognised at 5 s who stood by a customer from 0 s gives an interaction from 0 s.
Readiness is kept for the episode: two trusted customers queue, one leaves, and a third
who stands half hidden behind the till's monitor (never trusted: no visible life) keeps
the queue going; it is still a queue when it has lasted long enough.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.events import Box, Event, EventKind
from vizoflow.frame import Frame
from vizoflow.geometry import DISTANCE_UNITS, FloorMap, distances, ground_points
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
    since: float | None = None  # the condition held since then, before this candidate was observed (late roles)
    members: tuple[int, ...] = ()  # others taking part besides ``ids`` (a group served together)
    staff: frozenset[int] = frozenset()  # which of ``ids`` and ``members`` are staff


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
    staff: set[int] = field(default_factory=set)  # ids seen as staff in it
    ready: bool = False  # roles and trust fitted at some moment of it
    max_size: int = 0

    def add(self, t: float, obs: Observation) -> None:
        self.last = t
        self.conf_sum += obs.confidence
        self.conf_n += 1
        self.max_size = max(self.max_size, len(obs.ids))
        self.staff |= obs.staff
        for tid in (*obs.ids, *obs.members):
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
                first = t if obs.since is None else min(t, obs.since)
                ep = self.episodes[key] = Episode(first=first, last=t, start_obs=obs)
            ep.add(t, obs)
            ep.ready |= obs.ready
            if not ep.started and ep.ready and self._due(ep.last - ep.first):
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
        stamp = datetime.fromtimestamp(frame.epoch + ep.first, tz=UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        name = str(key) if self.kind == "queue" else "-".join(str(i) for i in ep.start_obs.ids)
        details: dict[str, object] = {}
        if self.kind == "queue":
            details = {"max_length": ep.max_size,
                       "waits": {str(tid): round(b - a, 3) for tid, (a, b) in sorted(ep.seen.items())}}
        elif self.kind == "unattended":
            details = {"waiting_time": round(ep.last - ep.first, 3)}
        elif self.kind == "interaction":  # everyone in the service, the main pair among them
            details = {"staff_ids": sorted(i for i in ep.seen if i in ep.staff),
                       "customer_ids": sorted(i for i in ep.seen if i not in ep.staff)}
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

    def reset(self) -> None:
        """Forget what a rule keeps besides its episodes (another video: its ids are other people)."""

    def process(self, frame: Frame) -> Frame:
        """Append this frame's events to ``frame.events``."""
        if self.zones is not None:
            self.zones.check_inside(frame.size)  # every frame: a live camera may come back at another size
        if frame.video != self._video:
            if self._last is not None:
                frame.events.extend(self.tracker.finish(self._last))
            self._video = frame.video
            self.reset()
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


def _unit(unit: str) -> str:
    if unit not in DISTANCE_UNITS:
        raise ConfigError(f"rules.distance_unit must be one of {', '.join(DISTANCE_UNITS)}, got {unit!r}")
    return unit


def _box(det: sv.Detections, i: int) -> Box:
    return tuple(round(float(v), 1) for v in det.xyxy[i])  # type: ignore[return-value]


def _conf(det: sv.Detections, idx: Sequence[int]) -> float:
    return float(np.mean(det.confidence[list(idx)])) if det.confidence is not None else 1.0


IN_SERVICE = "in_service"  # detections.data key: the person is in an interaction whose roles fit (a served customer)


@dataclass(slots=True)
class _Service:
    """One service going on: who takes part, where its staff stood, when last seen."""

    key: int
    members: set[int]
    staff_point: np.ndarray
    last: float


class InteractionRule(_Rule):
    """Staff serving customers: standing within ``max_distance`` for at least ``min_seconds``.

    One service is one event, whoever switches ids. Each frame, the staff-customer pairs
    standing close (both trusted, roles known) are joined into groups: a clerk with every
    customer near them, two staff with the customer they share. A group continues the
    service it shares anybody with, or, when nobody is shared (both sides changed id, or
    a new person id after a lost track), the service whose staff stood within
    ``max_distance`` of this group's staff and is not seen elsewhere now. So a clerk
    serving a group for two minutes is one event, listing every customer
    (``details.customer_ids``, ``details.staff_ids``); ``track_ids`` is the main pair
    ``(staff, customer)``: the pair that stood together longest when the event started.

    Pairs are followed from the moment they first stood close, whatever their roles, so
    a cashier recognised as staff after 2 s behind the till gives a service from 0 s.

    Every person in a service on this frame is marked ``detections.data["in_service"]``,
    which :class:`UnattendedRule` reads: a customer being served is not unattended.

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
        zones: The camera's zones (:class:`Zones` or name to polygon; needed with ``pairs``).
        pairs: Staff zone to the customer zone it serves; None: anywhere within ``max_distance``.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
        unit: Unit of ``max_distance`` without calibration: ``px`` or ``height`` (person
            heights; see :func:`~vizoflow.geometry.distances`).
    """

    def __init__(self, max_distance: float = 120.0, min_seconds: float = 3.0, gap_seconds: float = 2.0,
                 update_seconds: float | None = None, calibration: Mapping[str, Sequence[Sequence[float]]] | None = None,
                 zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None, pairs: Mapping[str, str] | None = None,
                 frame_size: Sequence[int] | None = None, unit: str = "px") -> None:
        super().__init__()
        if max_distance <= 0:
            raise ConfigError(f"interaction.max_distance must be > 0, got {max_distance}")
        self.unit = _unit(unit)
        if pairs:
            self.zones = Zones.of(zones, frame_size)
            self.zones.require([*pairs.keys(), *pairs.values()], "interaction.pairs")
        self.pairs = dict(pairs or {})
        self.max_distance = max_distance
        self.floor = FloorMap(calibration)
        self.tracker = EpisodeTracker("interaction", min_seconds, gap_seconds, update_seconds)
        self.reset()

    def reset(self) -> None:
        """Forget pairs and services (another video)."""
        self._close_since: dict[tuple[int, int], list[float]] = {}  # pair -> [first, last] time close
        self._services: dict[int, _Service] = {}
        self._next_key = 0

    def observe(self, frame: Frame) -> dict[Hashable, Observation]:
        people, t = _tracked(frame), frame.timestamp
        gap = self.tracker.gap_seconds + EPS
        self._close_since = {k: v for k, v in self._close_since.items() if t - v[1] <= gap}
        self._services = {k: v for k, v in self._services.items() if t - v.last <= gap}
        if len(people) < 2:
            if len(people):
                people.data[IN_SERVICE] = np.zeros(len(people), dtype=bool)
            return {}
        roles, trusted, ids = _roles(people), _trusted(people), people.tracker_id.tolist()
        points = self.floor.to_floor(ground_points(people.xyxy))
        close = distances(people.xyxy, people.xyxy, self.floor, self.unit) <= self.max_distance
        if self.pairs:
            close &= self._paired(people)
        links: list[tuple[int, int, float]] = []  # (staff row, customer row, close since)
        for i, j in zip(*np.nonzero(np.triu(close, k=1))):
            span = self._close_since.setdefault((min(ids[i], ids[j]), max(ids[i], ids[j])), [t, t])
            span[1] = t
            if roles[i] == roles[j] or not (trusted[i] and trusted[j]):
                continue
            staff, customer = (i, j) if roles[i] == STAFF else (j, i)
            links.append((int(staff), int(customer), span[0]))
        in_service = np.zeros(len(people), dtype=bool)
        out: dict[Hashable, Observation] = {}
        for group in self._groups(links):
            rows = sorted({r for s, c, _ in group for r in (s, c)})
            in_service[rows] = True
            staff, customer, since = min(group, key=lambda link: (link[2], ids[link[0]], ids[link[1]]))
            members = tuple(ids[r] for r in rows if r not in (staff, customer))
            staff_rows = [s for s, _, _ in group]
            radius = self.max_distance  # how near its staff must stand to continue a service by place (floor units)
            if self.unit == "height" and self.floor.matrix is None:
                radius *= float(np.max(people.xyxy[staff_rows, 3] - people.xyxy[staff_rows, 1]))
            service = self._service({ids[r] for r in rows}, points[staff_rows].mean(axis=0), radius, t, out)
            out[service] = Observation((ids[staff], ids[customer]), (_box(people, staff), _box(people, customer)),
                                       _conf(people, rows), True, since, members,
                                       frozenset(ids[r] for r in rows if roles[r] == STAFF))
        people.data[IN_SERVICE] = in_service
        return out

    @staticmethod
    def _groups(links: list[tuple[int, int, float]]) -> list[list[tuple[int, int, float]]]:
        """Links joined by shared people (union-find over rows)."""
        parent: dict[int, int] = {}

        def root(r: int) -> int:
            while parent.setdefault(r, r) != r:
                r = parent[r]
            return r

        for s, c, _ in links:
            parent[root(s)] = root(c)
        groups: dict[int, list[tuple[int, int, float]]] = {}
        for link in links:
            groups.setdefault(root(link[0]), []).append(link)
        return list(groups.values())

    def _service(self, members: set[int], staff_point: np.ndarray, radius: float, t: float,
                 taken: Mapping[Hashable, Observation]) -> int:
        """The service this group continues (shared people first, else its staff's place), or a new one."""
        free = [sv_ for sv_ in self._services.values() if sv_.key not in taken]
        match = next((sv_ for sv_ in free if sv_.members & members), None)
        if match is None:
            near = [(float(np.linalg.norm(sv_.staff_point - staff_point)), sv_.key) for sv_ in free if sv_.last < t]
            near = [n for n in near if n[0] <= radius]
            match = self._services[min(near)[1]] if near else None
        if match is None:
            match = self._services[self._next_key] = _Service(self._next_key, set(), staff_point, t)
            self._next_key += 1
        match.members |= members
        match.staff_point, match.last = staff_point, t
        return match.key

    def _paired(self, people: sv.Detections) -> np.ndarray:
        """``(N, N)`` symmetric: one of the two stands in a staff zone, the other in the zone it serves."""
        paired = np.zeros((len(people), len(people)), dtype=bool)
        for staff_zone, customer_zone in self.pairs.items():
            a, b = self.zones.contains(staff_zone, people), self.zones.contains(customer_zone, people)
            paired |= a[:, None] & b[None, :]
        return paired | paired.T


class UnattendedRule(_Rule):
    """A customer in ``zone`` with no staff within ``staff_distance`` for more than ``seconds``.

    A customer in a service (:class:`InteractionRule` marks them; put ``interaction``
    among this node's inputs) is attended, whatever the distances: the rules agree.

    Ends when staff comes near or the customer leaves (after ``gap_seconds``); the
    event's ``details.waiting_time`` is how long the customer waited, counted from when
    the customer was first seen alone, also before the track was trusted.

    Args:
        zones: The camera's zones (:class:`Zones` or name to polygon).
        zone: Zone the customer must be in (None: anywhere in the frame).
        seconds: Waiting time before the customer counts as unattended.
        staff_distance: A staff member this close attends the customer (pixels, or metres).
        gap_seconds: Interruptions up to this long do not split the wait.
        update_seconds: Periodic ``update`` events (None: off).
        calibration: Optional floor calibration.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
        unit: Unit of ``staff_distance`` without calibration: ``px`` or ``height``.
    """

    def __init__(self, zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None, zone: str | None = None,
                 seconds: float = 30.0, staff_distance: float = 200.0, gap_seconds: float = 2.0,
                 update_seconds: float | None = None, calibration: Mapping[str, Sequence[Sequence[float]]] | None = None,
                 frame_size: Sequence[int] | None = None, unit: str = "px") -> None:
        super().__init__()
        self.unit = _unit(unit)
        self.zones = Zones.of(zones, frame_size)
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
        served = customers.data.get(IN_SERVICE)
        alone = np.ones(len(customers), dtype=bool) if served is None else ~np.asarray(served, dtype=bool)
        if len(staff):
            alone &= distances(customers.xyxy, staff.xyxy, self.floor, self.unit).min(axis=1) > self.staff_distance
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
        zones: The camera's zones (:class:`Zones` or name to polygon).
        zone: The queue zone, or a list of them; None switches the rule off.
        min_people: Customers needed to call it a queue (at a till, the zone holds the
            customer being served too).
        min_seconds: How long the queue must last.
        gap_seconds: Dips below ``min_people`` up to this long do not end it.
        update_seconds: Periodic ``update`` events (None: off).
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    def __init__(self, zones: Zones | Mapping[str, Sequence[Sequence[float]]], zone: str | Sequence[str] | None = "queue",
                 min_people: int = 3, min_seconds: float = 10.0, gap_seconds: float = 3.0,
                 update_seconds: float | None = None, frame_size: Sequence[int] | None = None) -> None:
        super().__init__()
        if min_people < 1:
            raise ConfigError(f"queue.min_people must be >= 1, got {min_people}")
        self.zones = Zones.of(zones, frame_size)
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
