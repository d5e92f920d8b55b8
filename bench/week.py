"""A week of store time in minutes: daily files roll over, per-event cost stays flat, memory stays bounded.

Feeds seven Berlin days (2026-10-22 .. 10-28, with the end of summer time on the 25th)
of synthetic tracks (``tests/store_week.py``: opening hours 09:00-21:00, a scene every
5 minutes, a service across every midnight, quiet nights) through the shipped graph
from the person filter on: rules, segmenter (real clips), local evidence delivery
through the outbox, metrics sink. Prints one row per simulated day:

* events recorded that day, and the mean cost of recording one (``add_event``: the
  day file rewritten) -- flat if the cost does not grow with the days behind;
* the pipeline's frames per second over that day;
* RSS at the end of the day, and the size of the day's file.

Then checks the schedule against the outputs: every scene one event, on its start
day, with evidence; no event id twice.

    python bench/week.py [--days 7] [--timezone Europe/Berlin] [--first-day 2026-10-22]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.store_week import (  # noqa: E402
    Schedule,
    WeekSource,
    week_config,
)
from vizoflow.analytics.dayfile import AnalyticsFile  # noqa: E402
from vizoflow.memory import resident_mb  # noqa: E402

SECTIONS = (("interaction_metrics", "interaction_times"), ("unattended_metrics", "unattended_events"),
            ("queue_metrics", "queue_events"))


class DayMeter:
    """Times ``AnalyticsFile.add_event`` per local day and notes RSS and frames when a day ends.

    Instrumentation for this benchmark only: it wraps the class methods for the run.
    """

    def __init__(self, source: WeekSource) -> None:
        self.source = source
        self.cost: dict[str, list[float]] = defaultdict(list)
        self.ended: dict[str, tuple[float, int, float]] = {}  # day -> (RSS MB, frames so far, wall time)
        self._day: str | None = None
        self._add, self._open = AnalyticsFile.add_event, AnalyticsFile.open_day
        meter = self

        def add_event(collector: AnalyticsFile, event) -> None:
            t = time.perf_counter()
            meter._add(collector, event)
            meter.cost[collector.clock.day(event.epoch + event.started_at)].append(time.perf_counter() - t)

        def open_day(collector: AnalyticsFile, epoch: float) -> str:
            day = meter._open(collector, epoch)
            if day != meter._day:
                if meter._day is not None:
                    meter.ended[meter._day] = (resident_mb(), meter.source.frames, time.perf_counter())
                meter._day = day
            return day

        AnalyticsFile.add_event, AnalyticsFile.open_day = add_event, open_day

    def close(self) -> None:
        """Note the last day and restore the class."""
        if self._day is not None:
            self.ended[self._day] = (resident_mb(), self.source.frames, time.perf_counter())
        AnalyticsFile.add_event, AnalyticsFile.open_day = self._add, self._open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--timezone", default="Europe/Berlin")
    parser.add_argument("--first-day", default="2026-10-22")
    args = parser.parse_args()
    from vizoflow.pipeline import run_pipeline

    schedule = Schedule(args.timezone, args.first_day, args.days)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        source = WeekSource(schedule)
        meter = DayMeter(source)
        started = time.perf_counter()
        try:
            run_pipeline(week_config(out, args.timezone), source=source)
        finally:
            meter.close()
        total = time.perf_counter() - started
        run = out / "run"
        print(f"{args.days} days of {args.timezone} from {args.first_day}: {source.frames} frames, "
              f"{len(schedule.scenes)} scheduled events, {total:.0f} s wall ({source.frames / total:.0f} frames/s)\n")
        print("day          hours  events  ms/event  frames/s  RSS MB  file KB")
        before, clock_before = (None, 0, started), started
        for day in sorted(meter.ended):
            rss, frames, wall = meter.ended[day]
            path = run / f"analytics_metrics_{day}.json"
            doc = json.loads(path.read_text())
            hours = doc["daily_summary"][day]["hours"]
            n = sum(len(doc[s][k]) for s, k in SECTIONS)
            cost = meter.cost.get(day, [])
            mean = 1000 * sum(cost) / len(cost) if cost else 0.0
            print(f"{day}  {hours:5.0f}  {n:6d}  {mean:8.2f}  {(frames - before[1]) / (wall - clock_before):8.0f}  "
                  f"{rss:6.0f}  {path.stat().st_size / 1024:7.1f}")
            before, clock_before = (rss, frames, wall), wall
        check(schedule, out)


def check(schedule: Schedule, out: Path) -> None:
    """The outputs against the schedule: one event per scene, on its start day, with evidence."""
    found, ids, no_evidence, wrong_day = defaultdict(int), [], 0, 0
    for path in sorted((out / "run").glob("analytics_metrics_*.json")):
        doc, day = json.loads(path.read_text()), path.stem[-10:]
        for (section, name), kind in zip(SECTIONS, ("interaction", "unattended", "queue")):
            for entry in doc[section][name]:
                found[kind] += 1
                ids.append(entry["event_id"])
                no_evidence += "video_evidence" not in entry
                wrong_day += entry["start"][:10] != day
    expected = {k: schedule.expected(k) for k in ("interaction", "unattended", "queue")}
    ok = dict(found) == expected and len(ids) == len(set(ids)) and not no_evidence and not wrong_day
    print(f"\nevents found {dict(found)}, scheduled {expected}; duplicate ids {len(ids) - len(set(ids))}; "
          f"without evidence {no_evidence}; on the wrong day {wrong_day}: {'OK' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
