"""Service and waiting: from a customer's visit to a service zone to their first interaction with staff.

A *service zone* is where customers wait or are served (the queue zone, the customer
side of a counter). For every customer visit to one (:class:`~vizoflow.analytics.visits.Visit`):

* **wait** = the start of the customer's first interaction that overlaps the visit
  minus the moment the visit began (0 when staff was already there);
* **service** = that interaction's duration;
* **left unserved** = no interaction overlapped the visit.

Interaction events are dated from when the pair was first close, but are *announced*
up to the rule's ``min_seconds`` (plus role latency) later, so a visit is decided
``settle_seconds`` after it ended; a visit whose interaction is still going on is
decided when that interaction ends. One interaction serves one visit: a later visit
of the same customer overlapping an interaction an earlier visit already took (they
stepped out and back during it) continues that service and makes no row of its own.
A visit matches interactions under every id the customer had in it (re-identified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vizoflow.analytics.visits import Visit
from vizoflow.events import Event


@dataclass(frozen=True)
class Service:
    """One customer visit to a service zone and what came of it (clock seconds)."""

    zone: str
    customer_id: int
    entered: float
    left: float
    served: bool
    wait: float | None  # seconds from entering to the interaction's start
    service: float | None  # the interaction's duration
    staff_id: int | None
    event_id: str | None


@dataclass
class _Interaction:
    event_id: str
    staff_id: int
    start: float
    end: float | None = None  # None while it goes on
    used: bool = False  # it served a visit already


@dataclass
class _Pending:
    visit: Visit
    due: float  # clock time at which it is decided
    interactions: list[_Interaction] = field(default_factory=list)


class ServiceMeter:
    """Links visits to service zones with interaction events into :class:`Service` rows.

    Args:
        zones: The service zones (visits to other zones are ignored).
        settle_seconds: How long after a visit ended an interaction may still be announced.
        forget_seconds: A customer's ended interactions are dropped once the customer has been
            unseen this long and has no visit waiting (memory stays flat live).
    """

    def __init__(self, zones: Sequence[str], settle_seconds: float = 15.0, forget_seconds: float = 120.0) -> None:
        self.zones, self.settle_seconds, self.forget_seconds = set(zones), settle_seconds, forget_seconds
        self._interactions: dict[int, list[_Interaction]] = {}  # by customer id
        self._pending: list[_Pending] = []
        self._seen: dict[int, float] = {}  # customer id -> clock time last seen

    def on_event(self, event: Event) -> None:
        """Take note of an interaction's start and end."""
        if event.kind != "interaction":
            return
        staff_id, customer_id = event.track_ids
        for served in event.details.get("customer_ids", [customer_id]):  # every customer of a group service
            known = self._interactions.setdefault(int(served), [])
            item = next((i for i in known if i.event_id == event.event_id), None)
            if item is None:
                item = _Interaction(event.event_id, int(staff_id), event.started_at)
                known.append(item)
            if event.phase == "end":
                item.end = event.ended_at
            self._seen[int(served)] = max(self._seen.get(int(served), float("-inf")), event.ended_at)

    def on_visit(self, visit: Visit) -> None:
        """A visit ended; customers' visits to service zones are decided later."""
        if visit.zone in self.zones and visit.role == "customer":
            self._pending.append(_Pending(visit, visit.end + self.settle_seconds))

    def update(self, t: float, seen: Sequence[int] = ()) -> list[Service]:
        """Decide the visits that are due at clock time ``t`` (``seen``: the ids of the people in view,
        with the earlier ids of those re-identified, whose interactions must be kept)."""
        for tid in seen:
            self._seen[int(tid)] = t
        decided, waiting = [], []
        for p in sorted(self._pending, key=lambda p: p.visit.start):
            if t < p.due:
                waiting.append(p)
                continue
            done, row = self._decide(p)
            if not done:
                waiting.append(p)
            elif row is not None:
                decided.append(row)
        self._pending = waiting
        waiting_for = {i for p in waiting for i in (p.visit.track_id, *p.visit.aliases)}
        for cid in [c for c, last in self._seen.items() if t - last > self.forget_seconds and c not in waiting_for]:
            if all(i.end is not None for i in self._interactions.get(cid, [])):  # none still going on
                del self._seen[cid]
                self._interactions.pop(cid, None)
        return decided

    def flush(self) -> list[Service]:
        """Decide every pending visit now (end of the run: an interaction still open is cut here)."""
        rows = [self._decide(p, final=True)[1] for p in sorted(self._pending, key=lambda p: p.visit.start)]
        self._pending = []
        return [r for r in rows if r is not None]

    def reset(self) -> None:
        """Forget every interaction and customer (another video: its ids are other people)."""
        self._interactions.clear()
        self._seen.clear()

    def _decide(self, p: _Pending, final: bool = False) -> tuple[bool, Service | None]:
        """(decided, row): not decided while its interaction goes on; no row when it continues an earlier service."""
        v = p.visit
        overlapping = sorted((i for tid in (v.track_id, *v.aliases) for i in self._interactions.get(tid, [])
                              if i.start <= v.end and (i.end is None or i.end >= v.start)), key=lambda i: i.start)
        if not overlapping:
            return True, Service(v.zone, v.track_id, v.start, v.end, False, None, None, None, None)
        fresh = [i for i in overlapping if not i.used]
        if not fresh:
            return True, None  # stepped out and back while being served: the earlier visit has the service
        first = fresh[0]
        if first.end is None and not final:
            return False, None  # still being served: decided when the interaction ends
        first.used = True
        end = first.end if first.end is not None else v.end
        return True, Service(v.zone, v.track_id, v.start, v.end, True, round(max(0.0, first.start - v.start), 3),
                             round(end - first.start, 3), first.staff_id, first.event_id)
