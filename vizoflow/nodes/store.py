"""StoreAnalytics: footfall, occupancy, dwell, service and heat maps from the tracks, incrementally.

Sits after the rules (it reads their interaction events) and before the analytics sink,
which writes its figures into each local day's ``analytics_metrics_YYYY-MM-DD.json``
(``footfall_metrics``, ``occupancy_metrics``, ``dwell_metrics``, ``service_metrics``),
handed over on ``frame.figures`` every ``publish_seconds`` (and at the end, at a switch
to another video, and when a day is let go).
Rows for notebooks go to Parquet tables beside it (``footfall``, ``occupancy``,
``dwell``, ``service``, ``heatmap``) and each day's heat map to
``heatmap_<camera>_<day>.png``. Only people the person filter trusts count; line
crossings and visits made before a track was trusted count once it is (from their
own time), occupancy and the heat map from the moment of trust (about
``filters.score_window`` frames late: a fraction of a second at 10-30 fps).

A run into an output folder that already holds a day's figures (a live run restarted
after a crash or a reboot) goes on from them (:mod:`vizoflow.analytics.state`: each
day's counts, durations and heat, saved at every publish); the same recording run
again into the same folder starts its days from zero instead of counting twice.

Everything is computed from tracks, never pixels (the frame only serves as the heat
map's background), so a replay from the track cache gives the same figures.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import supervision as sv

from vizoflow.analytics.daily import DayFigures
from vizoflow.analytics.footfall import Crossing, LineCounter
from vizoflow.analytics.heatmap import Heatmap, render
from vizoflow.analytics.service import Service, ServiceMeter
from vizoflow.analytics.state import DayState
from vizoflow.analytics.visits import DwellMeter, MinuteOccupancy, OccupancyMeter, Visit
from vizoflow.clock import SiteClock
from vizoflow.frame import Frame
from vizoflow.geometry import ground_points
from vizoflow.nodes.sinks import ParquetTableWriter
from vizoflow.zones import Zones

log = logging.getLogger(__name__)
STORE_TABLES = ("footfall", "occupancy", "dwell", "service", "heatmap")  # <name>.parquet, each with `camera`


def _schemas(tz: str) -> dict[str, pa.Schema]:
    ts = pa.timestamp("ms", tz=tz)
    return {
        "footfall": pa.schema([("camera", pa.string()), ("line", pa.string()), ("track_id", pa.int64()),
                               ("direction", pa.string()), ("time", ts)]),
        "occupancy": pa.schema([("camera", pa.string()), ("minute", ts), ("zone", pa.string()), ("role", pa.string()),
                                ("mean", pa.float64()), ("max", pa.int64()), ("frames", pa.int64())]),
        "dwell": pa.schema([("camera", pa.string()), ("zone", pa.string()), ("track_id", pa.int64()),
                            ("role", pa.string()), ("start", ts), ("end", ts), ("seconds", pa.float64())]),
        "service": pa.schema([("camera", pa.string()), ("zone", pa.string()), ("customer_id", pa.int64()),
                              ("entered", ts), ("left", ts), ("served", pa.bool_()), ("wait_seconds", pa.float64()),
                              ("service_seconds", pa.float64()), ("staff_id", pa.int64()), ("event_id", pa.string())]),
        "heatmap": pa.schema([("camera", pa.string()), ("day", pa.string()), ("row", pa.int32()), ("col", pa.int32()),
                              ("cell_px", pa.int32()), ("seconds", pa.float64())]),
    }


def _ms(epoch: float) -> int:
    return round(1000 * epoch)


class StoreAnalytics:
    """Node: store figures from trusted tracks, per local day.

    Args:
        output_dir: Where the tables and heat maps go.
        zones: The camera's zones, :class:`Zones` or name to polygon (occupancy and dwell are measured in every one).
        lines: Counting lines, name to ``[[x1, y1], [x2, y2]]`` (in/out: :mod:`vizoflow.analytics.footfall`).
        service_zones: Zones where customers wait or are served (service and waiting times).
        camera: Camera name in the tables.
        timezone: The site's IANA zone (days and hours).
        frame_size: ``[width, height]`` the zones and lines were drawn on.
        line_margin, reid_seconds, reid_px: Line counting (see :class:`LineCounter`).
        dwell_gap_seconds: Time outside a zone that ends a visit.
        settle_seconds: How long after a visit an interaction may still be announced.
        heatmap_cell: Heat map cell size in pixels.
        publish_seconds: How often (clock seconds) the day's figures go to the analytics sink.
    """

    def __init__(self, output_dir: str, zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None,
                 lines: Mapping[str, Sequence[Sequence[float]]] | None = None, service_zones: Sequence[str] = (),
                 camera: str = "cam0", timezone: str = "UTC", frame_size: Sequence[int] | None = None,
                 line_margin: float = 10.0, reid_seconds: float = 2.0, reid_px: float = 40.0,
                 dwell_gap_seconds: float = 2.0, settle_seconds: float = 15.0, heatmap_cell: int = 8,
                 publish_seconds: float = 60.0) -> None:
        self.zones = Zones.of(zones, frame_size)
        self.zones.require(list(service_zones), "store.service_zones")
        self.zone_names = list(self.zones.polygons)
        self.service_zones = list(service_zones)
        self.lines = LineCounter(lines or {}, margin=line_margin, reid_seconds=reid_seconds, reid_px=reid_px)
        self.line_names = [line.name for line in self.lines.lines]
        self.clock, self.camera, self.out = SiteClock(timezone), camera, Path(output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.occupancy = OccupancyMeter(self.zone_names)
        self.dwell = DwellMeter(self.zone_names, dwell_gap_seconds, reid_seconds=reid_seconds, reid_px=reid_px)
        self.state = DayState(self.out, camera)
        self.service = ServiceMeter(self.service_zones, settle_seconds)
        self.heatmap_cell, self.publish_seconds = heatmap_cell, publish_seconds
        self.tables = {name: ParquetTableWriter(self.out / f"{name}.parquet", schema, row_group=5000)
                       for name, schema in _schemas(timezone).items()}
        self.days: OrderedDict[str, DayFigures] = OrderedDict()  # the two days used last (late visits reach back)
        self._outgoing: dict[str, dict[str, Any]] = {}  # sections of days let go, not yet handed on
        self._heat: tuple[str, Heatmap, np.ndarray | None] | None = None  # (day, map, background)
        self._heat_base = np.zeros(0)  # the heat grid as loaded (what this run adds is the rest)
        self._video: str | None = None
        self._epoch = 0.0
        self._published = float("-inf")
        self._changed: set[str] = set()

    # -- per frame ------------------------------------------------------------------------
    def process(self, frame: Frame) -> Frame:
        """Feed this frame's trusted people to every meter; hand changed day figures on now and then."""
        self.zones.check_inside(frame.size)
        events = frame.events
        if frame.video != self._video:  # another video: its tracks are other people, its clock starts again
            for event in events:  # the rules end the last video's events on the new video's first frame
                self.service.on_event(event)
            events = []
            self._end_video(frame)
            self._video, self._published = frame.video, float("-inf")
        self._epoch = frame.epoch
        t, epoch = frame.timestamp, frame.epoch + frame.timestamp
        people = self._tracked(frame.detections)
        ids = people.tracker_id.tolist() if people.tracker_id is not None else []
        trusted = np.asarray(people.data.get("trusted", np.ones(len(people), bool)), dtype=bool)
        roles = np.asarray(people.data.get("role", np.full(len(people), "customer")))
        inside = {name: self.zones.contains(name, people) for name in self.zone_names}
        points = ground_points(people.xyxy)
        for crossing in self.lines.update(t, ids, self._drawn(points, frame.size), trusted):
            self._crossing(crossing, self._epoch + crossing.t)
        for row in self.occupancy.update(epoch, roles[trusted], {k: v[trusted] for k, v in inside.items()}):
            self._minute(row)
        for visit in self.dwell.update(t, ids, roles.tolist(), inside, trusted, points):
            self._visit(visit)
        for event in events:
            self.service.on_event(event)
        for service in self.service.update(t, [*ids, *self.dwell.aliases(ids)]):
            self._service(service)
        self._heatmap(frame, epoch).add(t, points[trusted])
        if self._outgoing or (self._changed and t - self._published >= self.publish_seconds):
            self._publish(frame, t)
        for table in self.tables.values():  # a quiet table's rows and part go when due, not at its next row
            table.tick()
        return frame

    @staticmethod
    def _tracked(det: sv.Detections) -> sv.Detections:
        """The tracked boxes (empty when there are none)."""
        return sv.Detections.empty() if det.tracker_id is None or len(det) == 0 else det

    def finish(self, frame: Frame) -> Frame:
        """End the run: close the minute, the visits, the pending services; publish and draw the heat map."""
        for event in frame.events:
            self.service.on_event(event)
        self._end_video(frame)
        self._publish(frame, frame.timestamp)
        return frame

    def _end_video(self, frame: Frame) -> None:
        """Close what is open: the minute, visits, undecided services; forget the video's tracks."""
        for row in self.occupancy.flush():
            self._minute(row)
        for visit in self.dwell.flush():
            self._visit(visit)
        for service in self.service.flush():
            self._service(service)
        self.service.reset()
        self.lines.reset()

    def _drawn(self, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Ground points in the coordinates the lines were drawn in."""
        drawn = self.zones.drawn_size
        if drawn is None or drawn == size or len(points) == 0:
            return points
        return points * (drawn[0] / size[0], drawn[1] / size[1])

    # -- recording ------------------------------------------------------------------------
    def _day(self, epoch: float) -> DayFigures:
        """The figures of ``epoch``'s day, marked changed; a day let go is saved and handed on first."""
        day = self.clock.day(epoch)
        figures = self.days.get(day)
        if figures is None:
            self._outgoing.pop(day, None)  # back again: its sections are made afresh from what is reloaded
            figures = self.days[day] = DayFigures(self.clock, self.line_names, self.zone_names, self.service_zones)
            if self.state.open(day, (self._video, self._epoch)):
                figures.restore(self.state.figures(day))
            self._let_go(keep=day)
        self.days.move_to_end(day)
        self._changed.add(day)
        return figures

    def _let_go(self, keep: str) -> None:
        """Keep the two days used last (today, and yesterday for visits past midnight); save and hand on
        the others, except a day whose state could not be saved (it stays, so nothing is lost)."""
        for old in [d for d in self.days if d != keep][: max(0, len(self.days) - 2)]:
            if old in self._changed and not self._save_state(old):
                continue
            gone = self.days.pop(old)
            if old in self._changed:
                self._outgoing[old] = gone.sections()
                self._changed.discard(old)

    def _save_state(self, day: str) -> bool:
        """Save a day's figures (and its heat, when the heat map is on it); False if the figures could not be."""
        if self._heat is not None and self._heat[0] == day:
            self.state.save_heat(day, self._heat[1].grid)
        return self.state.save(day, self.days[day].state())

    def _crossing(self, c: Crossing, epoch: float) -> None:
        self._day(epoch).add_crossing(c, epoch)
        self.tables["footfall"].extend({"camera": [self.camera], "line": [c.line], "track_id": [c.track_id],
                                        "direction": [c.direction], "time": [_ms(epoch)]}, 1)

    def _minute(self, row: MinuteOccupancy) -> None:
        self._day(row.minute).add_minute(row)
        self.tables["occupancy"].extend({"camera": [self.camera], "minute": [_ms(row.minute)], "zone": [row.zone],
                                         "role": [row.role], "mean": [row.mean], "max": [row.max],
                                         "frames": [row.frames]}, 1)

    def _visit(self, v: Visit) -> None:
        self._day(self._epoch + v.start).add_visit(v, self._epoch)
        self.service.on_visit(v)
        self.tables["dwell"].extend({"camera": [self.camera], "zone": [v.zone], "track_id": [v.track_id],
                                     "role": [v.role], "start": [_ms(self._epoch + v.start)],
                                     "end": [_ms(self._epoch + v.end)], "seconds": [round(v.seconds, 3)]}, 1)

    def _service(self, s: Service) -> None:
        self._day(self._epoch + s.entered).add_service(s, self._epoch)
        self.tables["service"].extend({
            "camera": [self.camera], "zone": [s.zone], "customer_id": [s.customer_id],
            "entered": [_ms(self._epoch + s.entered)], "left": [_ms(self._epoch + s.left)], "served": [s.served],
            "wait_seconds": [s.wait], "service_seconds": [s.service], "staff_id": [s.staff_id],
            "event_id": [s.event_id]}, 1)

    def _heatmap(self, frame: Frame, epoch: float) -> Heatmap:
        day = self.clock.day(epoch)
        if self._heat is None or self._heat[0] != day:
            self._end_heatmap()
            background = frame.image.copy() if frame.image is not None and frame.image.any() else None
            heat = Heatmap(frame.size, self.heatmap_cell)
            earlier = self.state.heat(day, heat.grid.shape) if self.state.open(day, (self._video, self._epoch)) else None
            if earlier is not None:
                heat.grid += earlier
            self._heat, self._heat_base = (day, heat, background), heat.grid.copy()
        return self._heat[1]

    def _draw_heatmap(self) -> None:
        """The day's heat map as a PNG: the frame, and the heat over it (redrawn at every publish)."""
        if self._heat is None:
            return
        day, heat, background = self._heat
        path = self.out / f"heatmap_{self.camera}_{day}.png"
        if not cv2.imwrite(str(path), render(heat.grid, background, heat.size)):
            log.error("could not write %s", path)

    def _end_heatmap(self) -> None:
        """The day of the heat map is over (or the run): draw it, and its grid goes to the heatmap table."""
        if self._heat is None:
            return
        self._draw_heatmap()
        day, heat, _ = self._heat
        self.state.save_heat(day, heat.grid)
        added = heat.grid - self._heat_base  # what this run added (a day resumed or revisited is not counted twice)
        rows, cols = np.nonzero(added > 0)
        self.tables["heatmap"].extend({"camera": [self.camera] * len(rows), "day": [day] * len(rows),
                                       "row": rows.tolist(), "col": cols.tolist(), "cell_px": [heat.cell] * len(rows),
                                       "seconds": np.round(added[rows, cols], 3).tolist()}, len(rows))
        self._heat_base = heat.grid.copy()

    def _publish(self, frame: Frame, t: float) -> None:
        """Put the days let go and the changed days' sections on the frame for the analytics sink (in that
        order: a day back again has the newer figures); save their state and draw the heat map."""
        frame.figures.update(self._outgoing)
        self._outgoing.clear()
        for day in sorted(self._changed):
            if self._save_state(day):
                self._changed.discard(day)
            frame.figures[day] = self.days[day].sections()
        self._draw_heatmap()
        self._published = t

    def close(self) -> None:
        """Save the state, draw the last heat map and publish the tables."""
        for day in sorted(self._changed):  # normally none left: finish() published them
            self._save_state(day)
        self._end_heatmap()
        self._heat = None
        for table in self.tables.values():
            table.close()
