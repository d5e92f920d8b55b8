"""The day in charts: footfall, occupancy, queues and service per hour, drawn on the server.

Charts are SVG made by matplotlib from the day's analytics file, so the page needs no
script library and no CDN (stores and CI have no internet); a chart is text in the page.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOURS = list(range(24))


@dataclass
class Chart:
    """One chart: a title, what it shows, and its SVG (None: nothing to draw that day)."""

    key: str
    title: str
    svg: str | None


def _hour(key: str) -> int:
    """The hour of an hourly key ``YYYY-MM-DDTHH:MM+hh:mm``."""
    return int(key[11:13])


def _series(hourly: dict[str, Any], value) -> list[float]:
    values = [0.0] * 24
    for key, row in (hourly or {}).items():
        got = value(row)
        values[_hour(key)] = float(got) if got is not None else 0.0
    return values


def _svg(title: str, unit: str, bars: dict[str, list[float]]) -> str:
    """Grouped bars per hour as an SVG document (matplotlib, no window)."""
    from matplotlib.figure import Figure  # a Figure of its own: no pyplot, no global state, thread-safe

    fig = Figure(figsize=(7.5, 2.6), dpi=100)
    ax = fig.add_subplot()
    width = 0.8 / max(len(bars), 1)
    for i, (name, values) in enumerate(bars.items()):
        ax.bar([h - 0.4 + width * (i + 0.5) for h in HOURS], values, width=width, label=name)
    ax.set_xticks(HOURS[::2], [f"{h:02d}" for h in HOURS[::2]])
    ax.set_xlim(-0.6, 23.6)
    ax.set_ylabel(unit)
    ax.set_xlabel("hour (site time)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(bars) > 1:
        ax.legend(fontsize=7, ncols=min(len(bars), 4), loc="upper left")
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # inline in the page: no XML prolog


class DayCharts:
    """The charts of one day's analytics file (``analytics_metrics_<day>.json``)."""

    def __init__(self, path: Path) -> None:
        self.day = json.loads(Path(path).read_text(encoding="utf-8"))

    def footfall(self) -> Chart:
        """People in and out over the counting lines, per hour."""
        lines = (self.day.get("footfall_metrics") or {}).get("lines") or {}
        if not lines:
            return Chart("footfall", "Footfall", None)
        bars = {}
        for direction in ("in", "out"):
            per_line = [_series(line.get("hourly"), lambda r, d=direction: r.get(d)) for line in lines.values()]
            bars[direction] = [sum(v) for v in zip(*per_line)]
        return Chart("footfall", "Footfall: people in and out over " + ", ".join(lines), _svg("Footfall", "people", bars))

    def occupancy(self) -> Chart:
        """Mean people in each zone per hour."""
        zones = (self.day.get("occupancy_metrics") or {}).get("zones") or {}
        bars = {name: _series((z.get("all") or {}).get("hourly"), lambda r: r.get("mean")) for name, z in zones.items()}
        if not bars:
            return Chart("occupancy", "Occupancy", None)
        return Chart("occupancy", "Occupancy: mean people per zone", _svg("Occupancy", "people (mean)", bars))

    def service(self) -> Chart:
        """Median wait and service time per hour (customers in the service zones)."""
        hourly = (self.day.get("service_metrics") or {}).get("hourly") or {}
        if not hourly:
            return Chart("service", "Service", None)
        bars = {"wait": _series(hourly, lambda r: (r.get("wait") or {}).get("median_seconds")),
                "service": _series(hourly, lambda r: (r.get("service") or {}).get("median_seconds"))}
        return Chart("service", "Waiting and service times (median)", _svg("Wait and service", "seconds", bars))

    def queues(self) -> Chart:
        """Queue events and interactions started per hour."""
        summary = next(iter((self.day.get("daily_summary") or {}).values()), {}) or {}
        hourly = summary.get("hourly") or {}
        if not hourly:
            return Chart("events", "Events", None)
        bars = {kind: _series(hourly, lambda r, k=kind: r.get(k)) for kind in ("interactions", "unattended", "queues")}
        return Chart("events", "Events per hour", _svg("Events", "events", bars))

    def all(self) -> list[Chart]:
        """Every chart of the day, in page order."""
        return [self.footfall(), self.occupancy(), self.service(), self.queues()]
