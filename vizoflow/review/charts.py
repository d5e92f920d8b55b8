"""The day in charts: footfall, occupancy, queues and service per hour, drawn on the server.

Charts are SVG made by matplotlib from the day's analytics file, so the page needs no
script library and no CDN (stores and CI have no internet); a chart is text in the page.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOURS = tuple(range(24))


@dataclass
class Chart:
    """One chart: a title, what it shows, and its SVG (None: nothing to draw that day)."""

    key: str
    title: str
    svg: str | None


def _series(hourly: Any, value: Callable[[dict[str, Any]], Any], counts: bool = True) -> list[float]:
    """24 values from an ``hourly`` section keyed ``YYYY-MM-DDTHH:MM+hh:mm``.

    The hour repeated when clocks go back has two keys (two offsets): counts add up, a
    mean or median (``counts=False``) shows the larger of the two. Malformed keys and
    rows are left out.
    """
    values = [0.0] * 24
    for key, row in (hourly if isinstance(hourly, dict) else {}).items():
        try:
            got = value(row) if isinstance(row, dict) else None
            hour = int(str(key)[11:13])
            got = float(got) if got is not None else 0.0
            values[hour] = values[hour] + got if counts else max(values[hour], got)
        except (ValueError, TypeError, IndexError, AttributeError):
            continue
    return values


def _section(data: Any, *keys: str) -> dict[str, Any]:
    """``data[k1][k2]...`` when each is a mapping, else empty (a damaged file draws what it can)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


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
    """The charts of one day's analytics file (``analytics_metrics_<day>.json``).

    Args:
        day: The file's content.
    """

    def __init__(self, day: dict[str, Any]) -> None:
        self.day = day

    @classmethod
    def read(cls, path: Path) -> DayCharts:
        """The charts of the file at ``path``.

        Raises:
            ValueError: the file cannot be read or is not an analytics file (names it).
        """
        try:
            day = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{Path(path).name} cannot be read: {exc}") from None
        if not isinstance(day, dict):
            raise ValueError(f"{Path(path).name} is not an analytics file")
        return cls(day)

    def footfall(self) -> Chart:
        """People in and out over the counting lines, per hour."""
        lines = _section(self.day, "footfall_metrics", "lines")
        if not lines:
            return Chart("footfall", "Footfall", None)
        bars = {}
        for direction in ("in", "out"):
            per_line = [_series(_section(line, "hourly"), lambda r, d=direction: r.get(d)) for line in lines.values()]
            bars[direction] = [sum(v) for v in zip(*per_line)]
        return Chart("footfall", "Footfall: people in and out over " + ", ".join(lines), _svg("Footfall", "people", bars))

    def occupancy(self) -> Chart:
        """Mean people in each zone per hour."""
        zones = _section(self.day, "occupancy_metrics", "zones")
        bars = {name: _series(_section(z, "all", "hourly"), lambda r: r.get("mean"), counts=False) for name, z in zones.items()}
        if not bars:
            return Chart("occupancy", "Occupancy", None)
        return Chart("occupancy", "Occupancy: mean people per zone", _svg("Occupancy", "people (mean)", bars))

    def service(self) -> Chart:
        """Median wait and service time per hour (customers in the service zones)."""
        hourly = _section(self.day, "service_metrics", "hourly")
        if not hourly:
            return Chart("service", "Service", None)
        bars = {"wait": _series(hourly, lambda r: _section(r, "wait").get("median_seconds"), counts=False),
                "service": _series(hourly, lambda r: _section(r, "service").get("median_seconds"), counts=False)}
        return Chart("service", "Waiting and service times (median)", _svg("Wait and service", "seconds", bars))

    def queues(self) -> Chart:
        """Queue events and interactions started per hour."""
        summary = next(iter(_section(self.day, "daily_summary").values()), {})
        hourly = _section(summary, "hourly")
        if not hourly:
            return Chart("events", "Events", None)
        bars = {kind: _series(hourly, lambda r, k=kind: r.get(k)) for kind in ("interactions", "unattended", "queues")}
        return Chart("events", "Events per hour", _svg("Events", "events", bars))

    def all(self) -> list[Chart]:
        """Every chart of the day, in page order."""
        return [self.footfall(), self.occupancy(), self.service(), self.queues()]


class ChartCache:
    """A day's charts, drawn once per version of its file (matplotlib takes about 0.2 s a chart;
    a live run rewrites the day file every ``store.publish_seconds``).

    Args:
        size: Day files kept.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._charts: dict[tuple[str, int], list[Chart]] = {}
        self._lock = threading.Lock()  # the server's worker threads share it

    def get(self, path: Path) -> list[Chart]:
        """The charts of the day file at ``path``.

        Raises:
            ValueError: the file cannot be read or is not an analytics file.
        """
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError as exc:
            raise ValueError(f"{path.name} cannot be read: {exc}") from None
        with self._lock:
            if key in self._charts:
                return self._charts[key]
        charts = DayCharts.read(path).all()
        with self._lock:
            if len(self._charts) >= self.size:
                self._charts.clear()
            self._charts[key] = charts
        return charts
