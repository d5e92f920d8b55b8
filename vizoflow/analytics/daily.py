"""One local day's store figures: the ``*_metrics`` sections of that day's analytics file.

Hours are the site's local hours with their offset (the repeated autumn hour is two
buckets); a figure belongs to the hour its thing started in (a crossing's moment, a
minute, a visit's start). Only summaries are kept per day (counts, per-hour lists of
durations for medians), so memory grows with a day's visitors, never with days.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np

from vizoflow.analytics.footfall import IN, Crossing
from vizoflow.analytics.service import Service
from vizoflow.analytics.visits import MinuteOccupancy, Visit
from vizoflow.clock import SiteClock

DIRECTION = ("in: crossing from the left-hand to the right-hand side, walking along the line from its first "
             "point to its second (image coordinates)")


def _by_hour(hours: dict[str, Any]) -> list[tuple[str, Any]]:
    """Hour buckets in time order (as text, the repeated autumn hour ``02:00+01:00`` would sort first)."""
    return sorted(hours.items(), key=lambda kv: datetime.fromisoformat(kv[0]))


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_seconds": None, "p90_seconds": None}
    return {"count": len(values), "median_seconds": round(statistics.median(values), 3),
            "p90_seconds": round(float(np.percentile(values, 90)), 3)}


class DayFigures:
    """Accumulates one day's footfall, occupancy, dwell and service figures.

    Args:
        clock: The site's clock (hour buckets).
        lines: Counting line names (each appears, also with no crossing).
        zones: Zone names of occupancy and dwell.
        service_zones: Zones whose visits are service visits.
    """

    def __init__(self, clock: SiteClock, lines: list[str], zones: list[str], service_zones: list[str]) -> None:
        self.clock, self.lines, self.zones, self.service_zones = clock, lines, zones, service_zones
        self.footfall: dict[str, dict[str, list[int]]] = {line: defaultdict(lambda: [0, 0]) for line in lines}
        # (zone, role) -> hour -> [sum of minute means, minutes, max]
        self.occupancy: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0, 0]))
        self.peaks: dict[tuple[str, str], tuple[int, float]] = {}
        self.dwell: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.services: list[tuple[str, Service]] = []  # (hour entered, row)

    def add_crossing(self, crossing: Crossing, epoch: float) -> None:
        """A crossing at real time ``epoch``."""
        counts = self.footfall[crossing.line][self.clock.hour(epoch)]
        counts[0 if crossing.direction == IN else 1] += 1

    def add_minute(self, row: MinuteOccupancy) -> None:
        """A closed minute of occupancy."""
        key = (row.zone, row.role)
        hour = self.occupancy[key][self.clock.hour(row.minute)]
        hour[0] += row.mean
        hour[1] += 1
        hour[2] = max(hour[2], row.max)
        if row.max > self.peaks.get(key, (-1, 0.0))[0]:
            self.peaks[key] = (row.max, row.minute)

    def add_visit(self, visit: Visit, epoch: float) -> None:
        """A customer's ended visit (``epoch`` + clock seconds = real time)."""
        if visit.role == "customer":
            self.dwell[visit.zone][self.clock.hour(epoch + visit.start)].append(visit.seconds)

    def add_service(self, service: Service, epoch: float) -> None:
        """A decided service visit."""
        self.services.append((self.clock.hour(epoch + service.entered), service))

    def state(self) -> dict[str, Any]:
        """Everything the figures are made from, as JSON: a restarted run goes on from it."""
        return {"footfall": {line: dict(h) for line, h in self.footfall.items()},
                "occupancy": [[zone, role, dict(h)] for (zone, role), h in self.occupancy.items()],
                "peaks": [[zone, role, peak, at] for (zone, role), (peak, at) in self.peaks.items()],
                "dwell": {zone: dict(h) for zone, h in self.dwell.items()},
                "services": [[hour, asdict(s)] for hour, s in self.services]}

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from :meth:`state` of an earlier run (the same day, after a restart)."""
        for line, hours in state.get("footfall", {}).items():
            if line in self.footfall:
                self.footfall[line].update({h: list(c) for h, c in hours.items()})
        for zone, role, hours in state.get("occupancy", []):
            self.occupancy[(zone, role)].update({h: list(v) for h, v in hours.items()})
        self.peaks.update({(zone, role): (peak, at) for zone, role, peak, at in state.get("peaks", [])})
        for zone, hours in state.get("dwell", {}).items():
            self.dwell[zone].update({h: list(v) for h, v in hours.items()})
        self.services += [(hour, Service(**row)) for hour, row in state.get("services", [])]

    def sections(self) -> dict[str, Any]:
        """``footfall_metrics``, ``occupancy_metrics``, ``dwell_metrics`` and ``service_metrics``."""
        return {"footfall_metrics": self._footfall(), "occupancy_metrics": self._occupancy(),
                "dwell_metrics": self._dwell(), "service_metrics": self._service()}

    def _footfall(self) -> dict[str, Any]:
        lines = {}
        for line in self.lines:
            hours = self.footfall[line]
            lines[line] = {"in": sum(c[0] for c in hours.values()), "out": sum(c[1] for c in hours.values()),
                           "hourly": {h: {"in": c[0], "out": c[1]} for h, c in _by_hour(hours)}}
        return {"direction": DIRECTION, "lines": lines}

    def _occupancy(self) -> dict[str, Any]:
        zones: dict[str, dict[str, Any]] = {}
        for (zone, role), hours in sorted(self.occupancy.items()):
            hourly = {h: {"mean": round(total / n, 3), "max": int(peak)} for h, (total, n, peak) in _by_hour(hours)}
            peak, at = self.peaks[(zone, role)]
            mean = sum(v[0] for v in hours.values()) / sum(v[1] for v in hours.values())
            zones.setdefault(zone, {})[role] = {"mean": round(mean, 3), "max": peak, "max_at": self.clock.iso(at),
                                                "hourly": hourly}
        return {"unit": "people; per-minute means and maxima in occupancy.parquet", "zones": zones}

    def _dwell(self) -> dict[str, Any]:
        zones = {}
        for zone in self.zones:
            hours = self.dwell.get(zone, {})
            zones[zone] = {**_stats([s for v in hours.values() for s in v]),
                           "hourly": {h: _stats(v) for h, v in _by_hour(hours)}}
        return {"who": "customers", "zones": zones}

    def _service(self) -> dict[str, Any]:
        def summary(rows: list[Service]) -> dict[str, Any]:
            served = [r for r in rows if r.served]
            return {"visits": len(rows), "served": len(served), "left_unserved": len(rows) - len(served),
                    "wait": _stats([r.wait for r in served if r.wait is not None]),
                    "service": _stats([r.service for r in served if r.service is not None])}

        rows = [s for _, s in self.services]
        hours: dict[str, list[Service]] = defaultdict(list)
        for hour, s in self.services:
            hours[hour].append(s)
        return {"zones": self.service_zones, **summary(rows),
                "per_zone": {z: summary([r for r in rows if r.zone == z]) for z in self.service_zones},
                "hourly": {h: summary(v) for h, v in _by_hour(hours)}}
