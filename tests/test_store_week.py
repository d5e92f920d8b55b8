"""A store's days through the real graph (person filter to metrics and outbox), compressed.

Two Berlin days around the end of summer time (2026-10-25, 25 hours), opening hours
17:00-21:00, a service across every local midnight, an unattended customer alone
through the change at 03:00 CEST (02:45 CEST to 02:20 CET: 35 minutes on the clock,
-25 minutes on the wall) and a queue in the repeated hour (02:30 CET). The schedule is
the ground truth (``tests/store_week.py``). ``bench/week.py`` runs a whole week.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime

import polars as pl
import pytest

from tests.store_week import Schedule, run_week

pytestmark = pytest.mark.slow  # the whole graph over ~9000 frames (about 15 s)

SECTIONS = {"interaction": ("interaction_metrics", "interaction_times"),
            "unattended": ("unattended_metrics", "unattended_events"), "queue": ("queue_metrics", "queue_events")}
NIGHT = ("2026-10-25T02:45:00+02:00", 2100.0, "unattended")
REPEATED_HOUR = ("2026-10-25T02:30:00+01:00", 20.0, "queue")


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    out = tmp_path_factory.mktemp("week")
    schedule = Schedule("Europe/Berlin", "2026-10-24", 2, hours=(17, 21), extra=(NIGHT, REPEATED_HOUR))
    run_week(out, schedule)
    run = out / "run"
    days = {p.name[len("analytics_metrics_"):-5]: json.loads(p.read_text())
            for p in sorted(run.glob("analytics_metrics_*.json"))}
    return schedule, out, days


def entries(days, kind):
    section, name = SECTIONS[kind]
    return [(day, e) for day, doc in days.items() for e in doc[section][name]]


def at(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time).timestamp()


def test_every_scheduled_situation_is_one_event_on_the_local_day_it_started(week):
    schedule, _, days = week
    assert list(days) == ["2026-10-24", "2026-10-25", "2026-10-26"]
    for kind in SECTIONS:
        found = entries(days, kind)
        assert len(found) == schedule.expected(kind), kind  # none lost, none twice
        for day, entry in found:
            assert entry["start"][:10] == day  # local date of the start
    ids = [e["event_id"] for kind in SECTIONS for _, e in entries(days, kind)]
    assert len(ids) == len(set(ids))
    for scene in schedule.scenes:  # each scene is matched by exactly one event of its kind
        near = [e for _, e in entries(days, scene.kind) if abs(at(e["start"]) - scene.start) < 10]
        assert len(near) == 1, scene


def test_services_across_midnight_belong_to_the_day_they_started_and_keep_their_evidence(week):
    schedule, _, days = week
    late = [s for s in schedule.scenes if s.late]
    assert len(late) == 2
    for scene in late:
        [(day, entry)] = [(d, e) for d, e in entries(days, "interaction") if abs(at(e["start"]) - scene.start) < 10]
        assert entry["start"][11:16] == "23:59" and entry["end"][11:13] == "00"
        assert entry["end"][:10] > day == entry["start"][:10]
        assert entry["interaction_duration"] == pytest.approx(at(entry["end"]) - at(entry["start"]), abs=0.01)
        assert entry["video_evidence"]["incident_id"].startswith("incident_" + entry["start"][:10].replace("-", ""))


def test_the_day_of_the_change_has_25_hours_and_the_repeated_hour_two_buckets(week):
    _, _, days = week
    summary = {day: doc["daily_summary"][day] for day, doc in days.items()}
    assert [s["hours"] for s in summary.values()] == [24.0, 25.0, 24.0]
    assert summary["2026-10-25"]["day_start"] == "2026-10-25T00:00:00.000+02:00"
    assert summary["2026-10-25"]["day_end"] == "2026-10-26T00:00:00.000+01:00"
    hourly = summary["2026-10-25"]["hourly"]
    assert hourly["2026-10-25T02:00+02:00"]["unattended"] == 1 and hourly["2026-10-25T02:00+01:00"]["queues"] == 1


def test_a_duration_across_the_change_comes_from_the_clock_not_the_wall(week):
    _, _, days = week
    [entry] = [e for _, e in entries(days, "unattended") if e["start"].startswith("2026-10-25T02:4")]
    assert entry["start"] == "2026-10-25T02:45:00.000+02:00"  # dated from the first moment alone
    assert entry["end"].startswith(("2026-10-25T02:19:", "2026-10-25T02:20:")) and entry["end"].endswith("+01:00")
    assert entry["waiting_time"] == pytest.approx(2100, abs=2)  # 35 minutes, though the wall shows 02:45 -> 02:20


def test_clip_names_are_local_unique_and_in_recording_order_through_the_repeated_hour(week):
    _, out, days = week
    names = sorted(p.name for p in (out / "segments").glob("segment_*.mp4"))
    assert len(names) == len(set(names))
    night = {e["video_evidence"]["segment_filename"]: e for kind in ("unattended", "queue")
             for _, e in entries(days, kind) if e["start"].startswith("2026-10-25T02:")}
    first, second = sorted(night, key=lambda n: at(night[n]["start"]))
    assert re.search(r"_20261025_0244\d\d_unattended_start", first)  # pre-roll 5 s, local wall time
    assert re.search(r"_20261025_0229\d\d_queue_start", second)  # an earlier wall time, recorded later ...
    assert names.index(first) < names.index(second)  # ... and named after it all the same


def test_all_evidence_is_linked_and_the_link_points_at_the_newest_day(week):
    schedule, out, days = week
    missing = [e["event_id"] for kind in SECTIONS for _, e in entries(days, kind) if "video_evidence" not in e]
    assert missing == []
    assert os.readlink(out / "run" / "analytics_metrics.json") == "analytics_metrics_2026-10-26.json"
    events = pl.read_parquet(out / "run" / "events.parquet")
    assert events["start"].dtype == pl.Datetime("ms", "Europe/Berlin")
    assert events.filter(pl.col("phase") == "end").height == len(schedule.scenes)
    incidents = [json.loads(line) for line in (out / "segments" / "incidents.jsonl").read_text().splitlines()]
    assert {i["timezone"] for i in incidents} == {"Europe/Berlin"}
    assert all(i["start_time"].endswith(("+01:00", "+02:00")) for i in incidents)


def test_store_figures_follow_the_schedule_service_waits_dwell_and_heat_maps(week):
    schedule, out, days = week
    served = sum(s.kind == "interaction" for s in schedule.scenes)
    queued = sum(len(s.people) for s in schedule.scenes if s.kind == "queue")
    services = [days[d]["service_metrics"] for d in days]
    assert sum(s["served"] for s in services) == served  # every service scene at the till: served
    assert sum(s["left_unserved"] for s in services) == queued  # nobody serves the queue: all left unserved
    till = days["2026-10-24"]["service_metrics"]["per_zone"]["till"]
    assert till["wait"]["median_seconds"] == 0.0  # the staff member was there when they came
    assert till["service"]["median_seconds"] == pytest.approx(19.0, abs=1.0)  # 20 s scenes at one frame a second
    floor = days["2026-10-24"]["dwell_metrics"]["zones"]["floor"]
    assert floor["count"] == sum(s.kind == "unattended" and s.start < at("2026-10-25T00:00:00+02:00")
                                 for s in schedule.scenes)
    assert floor["median_seconds"] == pytest.approx(44.0, abs=1.0)  # 45 s alone, dated from the first frame
    occupancy = days["2026-10-24"]["occupancy_metrics"]["zones"]["queue"]["customer"]
    assert occupancy["max"] == 3
    assert sorted(p.name for p in (out / "run").glob("heatmap_*.png")) == [
        f"heatmap_cam0_{d}.png" for d in days]
    heat = pl.read_parquet(out / "run" / "heatmap.parquet")
    assert set(heat["day"]) == set(days) and heat["seconds"].sum() > 0
