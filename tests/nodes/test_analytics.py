"""analytics_metrics.json v1.1, the interaction log and events.parquet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jsonschema
import polars as pl
import pytest

from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.events import Event, VideoEvidence
from vizoflow.frame import Frame
from vizoflow.nodes.analytics import AnalyticsSink

NUMBER = {"type": "number"}
EVIDENCE = {"type": "object",
            "required": ["segment_filename", "uploaded_filename", "video_url", "incident_id", "upload_timestamp"],
            "properties": {k: {"type": "string"}
                           for k in ["segment_filename", "uploaded_filename", "video_url", "incident_id", "upload_timestamp"]}}
# The v1.1 analytics format's example structure, as a schema: these keys and types must be there.
V11_SCHEMA = {
    "type": "object",
    "required": ["metadata", "interaction_metrics"],
    "properties": {
        "metadata": {"type": "object", "required": ["version"], "properties": {"version": {"const": "1.1"}}},
        "interaction_metrics": {"type": "object", "required": ["interaction_times"], "properties": {
            "interaction_times": {"type": "array", "items": {
                "type": "object", "required": ["staff_id", "customer_id", "interaction_duration"],
                "properties": {"staff_id": {"type": "integer"}, "customer_id": {"type": "integer"},
                               "interaction_duration": NUMBER, "video_evidence": EVIDENCE}}}}},
        "unattended_metrics": {"type": "object", "required": ["unattended_events"]},
        "queue_metrics": {"type": "object", "required": ["queue_events"]},
        "daily_summary": {"type": "object"},
    },
}
EPOCH = 1_761_390_000.0  # 2025-10-25T11:00:00Z


def event(kind="interaction", phase="end", ids=(100, 200), start=52.0, duration=30.0, **details):
    return Event(kind=kind, phase=phase, event_id=f"{kind}-{start}-{'-'.join(map(str, ids))}", camera="cam",
                 track_ids=ids, boxes=tuple((1.0, 2.0, 3.0, 4.0) for _ in ids), confidence=0.85,
                 started_at=start, duration=duration, epoch=EPOCH, details=details)


def test_metrics_file_matches_the_v1_1_structure_and_summarizes_days(tmp_path):
    c = AnalyticsFile(tmp_path / "analytics_metrics.json", site="demo")
    c.add_event(event(duration=30.0))
    c.add_event(event(ids=(100, 201), start=100.0, duration=10.0))
    c.add_event(event("unattended", ids=(7,), duration=42.0, waiting_time=42.0))
    c.add_event(event("queue", ids=(1, 2, 3), duration=20.0, max_length=3, waits={"1": 20.0}))
    data = json.loads((tmp_path / "analytics_metrics.json").read_text())
    jsonschema.validate(data, V11_SCHEMA)
    first = data["interaction_metrics"]["interaction_times"][0]
    assert (first["staff_id"], first["customer_id"], first["interaction_duration"]) == (100, 200, 30.0)
    assert first["start"] == "2025-10-25T11:00:52.000+00:00"
    day = data["daily_summary"]["2025-10-25"]
    assert day == {"interactions": 2, "mean_interaction_duration": 20.0, "median_interaction_duration": 20.0,
                   "unattended": 1, "mean_unattended_wait": 42.0, "queues": 1, "max_queue_length": 3,
                   "timezone": "UTC", "day_start": "2025-10-25T00:00:00.000+00:00",
                   "day_end": "2025-10-26T00:00:00.000+00:00", "hours": 24.0,
                   "hourly": {"2025-10-25T11:00+00:00": {"interactions": 2, "unattended": 1, "queues": 1}}}
    # the link names the day's file, where the data is
    assert os.readlink(tmp_path / "analytics_metrics.json") == "analytics_metrics_2025-10-25.json"


def test_evidence_links_to_the_matching_entry_only(tmp_path):
    c = AnalyticsFile(tmp_path / "m.json")
    a, b = event(ids=(100, 200)), event(ids=(100, 201), start=60.0)
    c.add_event(a)
    c.add_event(b)
    ev = VideoEvidence("segment_8_20251025_113052_interaction_start.mp4", "prolific_upload_1.mp4",
                       "https://s3-noi.aces3.ai/vizo361/prolific_upload_1.mp4", "incident_1", "2025-10-25 11:31:30")
    assert not c.link_video_evidence(b.event_id, [100, 999], ev)  # same event id, other ids: no match
    assert c.link_video_evidence(b.event_id, [100, 201], ev)
    data = json.loads((tmp_path / "m.json").read_text())
    jsonschema.validate(data, V11_SCHEMA)
    entries = data["interaction_metrics"]["interaction_times"]
    assert "video_evidence" not in entries[0] and entries[1]["video_evidence"] == ev.to_dict()


def test_a_long_queue_is_linked_with_the_ids_its_first_clip_knew(tmp_path):
    # a queue's first clip is cut at max_seconds with the people queued by then; its
    # entry, written when the queue ends, lists everyone who joined later as well
    c = AnalyticsFile(tmp_path / "m.json")
    queue = event("queue", ids=(1, 2, 3, 4, 9), duration=300.0, max_length=4, waits={"1": 20.0})
    c.add_event(queue)
    ev = VideoEvidence("segment_9_20251025_113052_queue_start.mp4", "prolific_upload_2.mp4",
                       "https://s3-noi.aces3.ai/vizo361/prolific_upload_2.mp4", "incident_2", "2025-10-25 11:31:30")
    assert not c.link_video_evidence(queue.event_id, [1, 5], ev)  # someone the queue never held: another event
    assert c.link_video_evidence(queue.event_id, [1, 2, 3], ev)
    entry = json.loads((tmp_path / "m.json").read_text())["queue_metrics"]["queue_events"][0]
    assert entry["video_evidence"] == ev.to_dict()


def test_an_existing_file_is_continued_and_a_torn_one_is_kept_aside(tmp_path):
    path = tmp_path / "m.json"
    AnalyticsFile(path).add_event(event())
    AnalyticsFile(path).add_event(event(start=99.0))
    assert len(json.loads(path.read_text())["interaction_metrics"]["interaction_times"]) == 2
    day_file = tmp_path / "m_2025-10-25.json"
    day_file.write_text('{"metadata": {"vers')
    AnalyticsFile(path).add_event(event(start=120.0))
    assert [e["start"] for e in json.loads(path.read_text())["interaction_metrics"]["interaction_times"]] == [
        "2025-10-25T11:02:00.000+00:00"]
    assert (tmp_path / "m_2025-10-25.json.unreadable").read_text() == '{"metadata": {"vers'


def test_kill_during_writes_leaves_the_old_or_the_new_file_never_a_torn_one(tmp_path):
    path = tmp_path / "m.json"
    script = textwrap.dedent(f"""
        from vizoflow.events import Event
        from vizoflow.analytics.dayfile import AnalyticsFile
        import sys
        run = sys.argv[1]
        c = AnalyticsFile({str(path)!r})
        i = 0
        while True:
            i += 1
            c.add_event(Event("interaction", "end", f"{{run}}-e{{i}}", "cam", (1, 2), ((0, 0, 1, 1),) * 2, 0.9, float(i), 3.0))
    """)

    def count() -> int:
        try:
            return len(json.loads(path.read_text())["interaction_metrics"]["interaction_times"])
        except FileNotFoundError:
            return 0

    written, before = 0, set()
    for run, delay in enumerate((0.05, 0.13, 0.31)):
        proc = subprocess.Popen([sys.executable, "-c", script, f"run{run}"], env={**os.environ})
        try:
            # this process continues the file: wait until it has written, so the kill hits its writes
            deadline = time.monotonic() + 60
            while count() <= written and time.monotonic() < deadline:
                assert proc.poll() is None, "the writer died on its own"
                time.sleep(0.005)
            assert count() > written, "the writer wrote nothing within 60 s"
            time.sleep(delay)  # mid-stream of hundreds of writes a second
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        data = json.loads(path.read_text())  # would raise on a torn file
        jsonschema.validate(data, V11_SCHEMA)
        entries = data["interaction_metrics"]["interaction_times"]
        ids = {e["event_id"] for e in entries}
        assert any(i.startswith(f"run{run}-") for i in ids)  # this run's writes, not the previous run's file
        assert before <= ids  # nothing recorded before was lost
        written, before = len(entries), ids


def test_sink_logs_every_phase_and_records_ended_events(tmp_path):
    sink = AnalyticsSink(str(tmp_path / "m.json"), str(tmp_path / "log.jsonl"), str(tmp_path / "events.parquet"), site="s")
    import numpy as np
    f = Frame(video="cam", index=0, timestamp=0.0, image=np.zeros((2, 2, 3), np.uint8))
    f.events = [event(phase="start", duration=3.0), event("unattended", ids=(7,), waiting_time=31.0, duration=31.0)]
    sink.process(f)
    end = Frame(video="cam", index=1, timestamp=1.0, image=f.image, events=[event(phase="end")])
    sink.finish(end)
    sink.close()
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["start", "end", "end"]
    assert lines[0]["start"].endswith("+00:00")
    data = json.loads((tmp_path / "m.json").read_text())
    assert len(data["interaction_metrics"]["interaction_times"]) == 1
    assert data["unattended_metrics"]["unattended_events"][0]["waiting_time"] == 31.0
    table = pl.read_parquet(tmp_path / "events.parquet")
    assert table.height == 3 and table["start"].dtype == pl.Datetime("ms", "UTC")
    assert table.filter(pl.col("kind") == "unattended")["waiting_time"].to_list() == [31.0]
    assert table.filter(pl.col("kind") == "interaction")["staff_id"].to_list() == [100, 100]


def test_other_version_is_refused(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"metadata": {"version": "1.0"}}))
    with pytest.raises(ValueError, match="1.0"):
        AnalyticsFile(tmp_path / "m.json")


def test_a_failed_metrics_write_keeps_the_data_logs_once_and_lands_on_the_next_write(tmp_path, monkeypatch, caplog):
    """Injected ENOSPC: the pipeline's calls do not raise, nothing recorded is lost, one error per streak."""
    import vizoflow.analytics.dayfile as dayfile_module

    path = tmp_path / "m.json"
    real_write = dayfile_module.write_json_atomic
    sink = AnalyticsSink(str(path), str(tmp_path / "log.jsonl"), str(tmp_path / "events.parquet"), link_seconds=0.0)
    first = event(start=10.0)
    sink.collector.add_event(first)
    full = {"on": True}

    def write(target, data):
        if full["on"]:
            raise OSError(28, "No space left on device")
        real_write(target, data)

    monkeypatch.setattr(dayfile_module, "write_json_atomic", write)
    import numpy as np

    frame = Frame(video="cam", index=0, timestamp=0.0, image=np.zeros((2, 2, 3), np.uint8), epoch=EPOCH)
    frame.events = [event(start=20.0), event(start=30.0)]
    sink.process(frame)  # does not raise: analysis goes on
    frame.events = [event(start=40.0)]
    sink.process(frame)
    assert sink.collector.unsaved and sink.status() == {"analytics_unsaved": 1.0}
    assert caplog.text.count("could not write") == 1  # once per streak, not per write
    on_disk = json.loads(path.read_text())["interaction_metrics"]["interaction_times"]
    assert [e["event_id"] for e in on_disk] == [first.event_id]  # the old complete file is intact
    assert list(tmp_path.glob(".m*.tmp")) == []
    full["on"] = False  # space is back: the next pass writes everything
    frame.events = []
    sink.process(frame)
    assert not sink.collector.unsaved and sink.status() == {"analytics_unsaved": 0.0}
    assert "written again after 5 failed write(s)" in caplog.text  # 3 events + 2 retries
    ids = [e["event_id"] for e in json.loads(path.read_text())["interaction_metrics"]["interaction_times"]]
    assert ids == [event(start=s).event_id for s in (10.0, 20.0, 30.0, 40.0)]
    sink.close()


def test_a_link_is_done_only_once_the_file_holding_it_is_written(tmp_path, monkeypatch):
    import vizoflow.analytics.dayfile as dayfile_module
    from vizoflow.evidence.linker import EvidenceLinker
    from vizoflow.evidence.outbox import Outbox

    collector = AnalyticsFile(tmp_path / "m.json")
    e = event()
    collector.add_event(e)
    outbox = Outbox(tmp_path / "o.sqlite")
    clip = tmp_path / "segment_1_x_interaction_start.mp4"
    clip.write_bytes(b"x")
    item_id = outbox.add(e.event_id, 1, e.kind, str(clip), {**e.to_dict(), "metrics_path": str(collector.path)})
    outbox.uploaded(item_id, "local", "segment_1.mp4", "file:///x", "2025-10-25 11:00:00", "incident_1")
    outbox.reported(item_id, "local")
    real_write = dayfile_module.write_json_atomic

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dayfile_module, "write_json_atomic", full)
    linker = EvidenceLinker(outbox, collector)
    assert linker.link() == 0 and outbox.get(item_id).state == "reported"  # not linked while not on disk
    monkeypatch.setattr(dayfile_module, "write_json_atomic", real_write)
    assert linker.link() == 1 and outbox.get(item_id).state == "linked"
    entry = json.loads(collector.path.read_text())["interaction_metrics"]["interaction_times"][0]
    assert entry["video_evidence"]["incident_id"] == "incident_1"


def at(iso_time: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso_time).timestamp()


def local_event(start_iso: str, duration: float, ids=(100, 200), kind="interaction") -> Event:
    """An ended event starting at a local ISO time (its epoch is that instant, clock time 0)."""
    return Event(kind=kind, phase="end", event_id=f"{kind}-{start_iso}-{'-'.join(map(str, ids))}", camera="cam",
                 track_ids=ids, boxes=tuple((1.0, 2.0, 3.0, 4.0) for _ in ids), confidence=0.85, started_at=0.0,
                 duration=duration, epoch=at(start_iso))


def test_kolkata_an_event_across_local_midnight_is_in_its_start_days_file_with_its_evidence(tmp_path):
    from vizoflow.clock import SiteClock
    from vizoflow.evidence.linker import EvidenceLinker
    from vizoflow.evidence.outbox import Outbox

    clock = SiteClock("Asia/Kolkata")
    path = tmp_path / "analytics_metrics.json"
    c = AnalyticsFile(path, site="store42", clock=clock)
    e = local_event("2026-11-29T23:59:50+05:30", 40.0)  # ends 00:00:30 on the 30th
    c.open_day(e.epoch)
    c.open_day(e.epoch + 40.0)  # the frames went on past midnight: the new day has its file
    c.add_event(e)
    assert os.readlink(path) == "analytics_metrics_2026-11-30.json"  # where a user looks for today
    day29 = json.loads((tmp_path / "analytics_metrics_2026-11-29.json").read_text())
    [entry] = day29["interaction_metrics"]["interaction_times"]
    assert (entry["start"], entry["end"]) == ("2026-11-29T23:59:50.000+05:30", "2026-11-30T00:00:30.000+05:30")
    assert day29["metadata"]["timezone"] == "Asia/Kolkata" and day29["metadata"]["day"] == "2026-11-29"
    assert day29["daily_summary"]["2026-11-29"]["day_start"] == "2026-11-29T00:00:00.000+05:30"
    assert json.loads(path.read_text())["interaction_metrics"]["interaction_times"] == []
    outbox = Outbox(tmp_path / "o.sqlite")  # the clip is delivered after midnight; the link finds the 29th
    clip = tmp_path / "segment_000001_20261129_235940_interaction_start.mp4"
    clip.write_bytes(b"x")
    item_id = outbox.add(e.event_id, 1, e.kind, str(clip), {**e.to_dict(clock), "metrics_path": str(path)})
    outbox.uploaded(item_id, "local", clip.name, clip.as_uri(), "2026-11-30 00:01:10", "incident_20261129_235950_1")
    outbox.reported(item_id, "local")
    assert EvidenceLinker(outbox, c).link() == 1
    day29 = json.loads((tmp_path / "analytics_metrics_2026-11-29.json").read_text())
    assert day29["interaction_metrics"]["interaction_times"][0]["video_evidence"]["segment_filename"] == clip.name


def test_berlin_spring_day_has_23_hours_and_an_event_across_the_change_keeps_its_clock_duration(tmp_path):
    from vizoflow.clock import SiteClock

    c = AnalyticsFile(tmp_path / "m.json", clock=SiteClock("Europe/Berlin"))
    c.add_event(local_event("2026-03-29T01:50:00+01:00", 1200.0))  # 20 min; the wall says 01:50 -> 03:10
    doc = json.loads((tmp_path / "m_2026-03-29.json").read_text())
    [entry] = doc["interaction_metrics"]["interaction_times"]
    assert entry["end"] == "2026-03-29T03:10:00.000+02:00" and entry["interaction_duration"] == 1200.0
    assert doc["daily_summary"]["2026-03-29"]["hours"] == 23.0


def test_a_single_file_of_an_older_vizoflow_is_split_into_day_files_and_kept(tmp_path):
    path = tmp_path / "analytics_metrics.json"
    old = {"metadata": {"version": "1.1", "site": "x"}, "interaction_metrics": {"interaction_times": [
        {**e, "staff_id": 1, "customer_id": 2, "interaction_duration": 3.0} for e in (
            {"event_id": "a", "start": "2025-10-25T23:00:00.000+00:00"},
            {"event_id": "b", "start": "2025-10-26T01:00:00.000+00:00"})]},
           "unattended_metrics": {"unattended_events": []}, "queue_metrics": {"queue_events": []}, "daily_summary": {}}
    path.write_text(json.dumps(old))
    AnalyticsFile(path)
    days = {p.name: [e["event_id"] for e in json.loads(p.read_text())["interaction_metrics"]["interaction_times"]]
            for p in tmp_path.glob("analytics_metrics_*.json")}
    assert days == {"analytics_metrics_2025-10-25.json": ["a"], "analytics_metrics_2025-10-26.json": ["b"]}
    assert json.loads((tmp_path / "analytics_metrics.pre-daily.json").read_text()) == old  # nothing lost
    assert os.readlink(path) == "analytics_metrics_2025-10-26.json"
