"""A store's days, compressed: synthetic tracks for the rules, metrics and outbox over many days.

Used by ``tests/test_store_week.py`` (about a day and a half around a daylight-saving
change) and ``bench/week.py`` (a week). The camera sees a 160x120 floor; every frame
carries tracked boxes as the tracker would hand them on, so the real graph from the
person filter on runs unchanged: filter, roles, the three rules, the segmenter (real
H.264 clips), local evidence delivery through the outbox, and the metrics sink.

Ground truth is the schedule itself. Opening hours 09:00-21:00 local: a staff member
stands at the counter; every 5 minutes a scene starts, in turn a service (a customer
at the counter for 20 s: one interaction), an unattended customer (alone on the floor
for 45 s: one unattended event) and a queue (three customers in the queue zone for
20 s: one queue). Every night at 23:59:35 a late service crosses local midnight. At
night frames come every 60 s with nobody in view; between scenes every 10 s; during a
scene every second. Time is compressed by skipping the empty seconds, never by
changing the clock: frame timestamps are exact seconds since the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import supervision as sv
from omegaconf import DictConfig

from vizoflow.frame import Frame

SIZE = (160, 120)  # width, height
ZONES = {
    "counter": [[120, 0], [160, 0], [160, 120], [120, 120]],
    "floor": [[0, 0], [100, 0], [100, 80], [0, 80]],
    "till": [[100, 0], [120, 0], [120, 80], [100, 80]],  # where customers are served
    "queue": [[0, 80], [60, 80], [60, 120], [0, 120]],
}
STAFF_AT = (150.0, 30.0)  # ground points (bottom centre of the box)
SERVED_AT = (115.0, 30.0)  # 35 px from the staff member: close
ALONE_AT = (30.0, 40.0)  # on the floor, 120 px from the counter
QUEUE_AT = ((10.0, 100.0), (30.0, 105.0), (50.0, 100.0))
OVERRIDES = [
    "+zones.counter=" + str(ZONES["counter"]).replace(" ", ""),
    "+zones.floor=" + str(ZONES["floor"]).replace(" ", ""),
    "+zones.queue=" + str(ZONES["queue"]).replace(" ", ""),
    "+zones.till=" + str(ZONES["till"]).replace(" ", ""),
    "store.service_zones=[till,queue]",
    "frame_size=[160,120]",
    "rules.staff.zones=[counter]",
    "rules.distance_unit=px",
    "rules.interaction.max_distance=40",
    "rules.unattended.zone=floor",
    "rules.unattended.staff_distance=60",
    "rules.queue.zone=queue",
    "rules.queue.min_people=3",
    "evidence.pre_roll=5", "evidence.post_roll=2",
]
SCENES = {"service": (20, "interaction"), "unattended": (45, "unattended"), "queue": (20, "queue")}
SPOTS = {"interaction": (SERVED_AT,), "unattended": (ALONE_AT,), "queue": QUEUE_AT}  # customers of a scene
OPEN, CLOSE = 9, 21


@dataclass(frozen=True)
class Scene:
    """People in view from ``start`` for ``seconds`` (epoch seconds), making one event of ``kind``."""

    start: float
    seconds: float
    kind: str  # interaction | unattended | queue
    people: tuple[tuple[int, tuple[float, float]], ...]  # (track id, ground point)
    late: bool = False  # the nightly service across midnight (brings its own staff member)


@dataclass
class Schedule:
    """The scenes of ``days`` local days from ``first_day`` in ``timezone``, and the frames to show them.

    ``hours`` are the opening hours (local); ``extra`` adds scenes at given local ISO
    times with offset (``2026-10-25T02:30:00+01:00`` is the second 02:30 of that night):
    ``(start, seconds, kind)`` with the people of that kind's scene and no staff member.
    """

    timezone: str
    first_day: str
    days: int
    hours: tuple[int, int] = (OPEN, CLOSE)
    extra: tuple[tuple[str, float, str], ...] = ()
    scenes: list[Scene] = field(default_factory=list)

    def __post_init__(self) -> None:
        zone = ZoneInfo(self.timezone)
        next_id = 100
        day0 = datetime.fromisoformat(self.first_day)
        self.open_hours: list[tuple[float, float, int]] = []  # (open, close, staff track id) per day
        for d in range(self.days):
            day = day0 + timedelta(days=d)
            opens = day.replace(hour=self.hours[0], tzinfo=zone).timestamp()
            closes = day.replace(hour=self.hours[1], tzinfo=zone).timestamp()
            self.open_hours.append((opens, closes, 10 + d))
            for k, t in enumerate(np.arange(opens + 60, closes - 120, 300)):
                name = ("service", "unattended", "queue")[k % 3]
                seconds, kind = SCENES[name]
                people = tuple((next_id + i, spot) for i, spot in enumerate(SPOTS[kind]))
                next_id += len(people)
                self.scenes.append(Scene(float(t), seconds, kind, people))
            late = day.replace(hour=23, minute=59, second=35, tzinfo=zone).timestamp()
            self.scenes.append(Scene(late, 40, "interaction", ((next_id, SERVED_AT), (next_id + 1, STAFF_AT)),
                                     late=True))
            next_id += 2
        for start, seconds, kind in self.extra:
            people = tuple((next_id + i, spot) for i, spot in enumerate(SPOTS[kind]))
            next_id += len(people)
            self.scenes.append(Scene(datetime.fromisoformat(start).timestamp(), seconds, kind, people))
        self.start = day0.replace(tzinfo=zone).timestamp()
        self.end = (day0 + timedelta(days=self.days)).replace(tzinfo=zone).timestamp() + 120

    def expected(self, kind: str) -> int:
        """Events of ``kind`` the schedule makes (each scene makes exactly one)."""
        return sum(s.kind == kind for s in self.scenes)

    def times(self) -> Iterator[float]:
        """Epoch seconds of the frames: every 1 s in a scene (and 8 s around it), 10 s open, 60 s closed."""
        busy = sorted((s.start - 8, s.start + s.seconds + 8) for s in self.scenes)
        t, i = self.start, 0
        while t < self.end:
            yield t
            while i < len(busy) and busy[i][1] <= t:
                i += 1
            if i < len(busy) and busy[i][0] <= t:
                step = 1.0
            else:
                step = 10.0 if any(o <= t < c for o, c, _ in self.open_hours) else 60.0
                if i < len(busy):
                    step = min(step, max(1.0, busy[i][0] - t))
            t += step


class WeekSource:
    """Frames of a :class:`Schedule` with their tracked boxes, as the tracker node would hand them on.

    People sway by 2 px from frame to frame, so the person filter's box-edge test sees the life
    real people show (and trusts them after its ``motion_frames``); the frames are flat grey, so
    the pixel test is off (:func:`week_config`).
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        self.frames = 0

    def __iter__(self) -> Iterator[Frame]:
        s = self.schedule
        scenes = sorted(s.scenes, key=lambda sc: sc.start)
        first = 0
        for index, t in enumerate(s.times()):
            while first < len(scenes) and scenes[first].start + scenes[first].seconds < t - 60:
                first += 1
            people = [(tid, spot) for sc in scenes[first:first + 4] if sc.start <= t < sc.start + sc.seconds
                      for tid, spot in sc.people]
            people += [(staff, STAFF_AT) for o, c, staff in s.open_hours if o <= t < c]
            self.frames += 1
            yield Frame(video="week", index=index, timestamp=t - s.start, image=self.image, epoch=s.start,
                        detections=self._boxes(people, 2.0 if index % 2 else -2.0))

    @staticmethod
    def _boxes(people: list[tuple[int, tuple[float, float]]], sway: float) -> sv.Detections:
        if not people:
            return sv.Detections.empty()
        xy = np.array([spot for _, spot in people]) + sway
        boxes = np.column_stack([xy[:, 0] - 5, xy[:, 1] - 30, xy[:, 0] + 5, xy[:, 1]]).astype(np.float32)
        return sv.Detections(xyxy=boxes, confidence=np.full(len(people), 0.8, np.float32),
                             class_id=np.zeros(len(people), int), tracker_id=np.array([tid for tid, _ in people]))

    def close(self) -> None:
        """Nothing to release."""


def week_config(out: Path, timezone: str, *overrides: str) -> DictConfig:
    """The shipped graph from the identity layer on, fed by :class:`WeekSource`, outputs under ``out``."""
    from hydra import compose, initialize_config_dir

    from vizoflow.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[
            f"output_dir={out}/run", f"evidence.dir={out}/segments", f"timezone={timezone}", "site_name=week",
            "~graph.detect", "~graph.track", "~graph.appearance", "~graph.tracks", "~graph.preview",
            "graph.identity.after=[source]",
            # flat grey frames have no pixels that change: trust by the box-edge test, which the sway passes
            "filters.min_change=0",
            "runtime.progress=false", "evidence.retention.max_age_hours=null", *OVERRIDES, *overrides])


def run_week(out: Path, schedule: Schedule, *overrides: str) -> WeekSource:
    """Run the graph over ``schedule``; the source (its frame count) is returned."""
    from vizoflow.pipeline import run_pipeline

    source = WeekSource(schedule)
    run_pipeline(week_config(out, schedule.timezone, *overrides), source=source)
    return source
