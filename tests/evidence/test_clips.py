"""One camera's clips: pre-roll really present, durations, the max-length cap, time mode, faults."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.events import Event, VideoEvidence
from vizoflow.evidence.clips import ClipCutter, ClipSettings
from vizoflow.evidence.disk import DiskGuard
from vizoflow.evidence.outbox import Outbox
from vizoflow.evidence.recorder import ClipRecorder
from vizoflow.evidence.service import OUTBOX_NAME
from vizoflow.frame import Frame

FPS = 10


def barcode(i: int) -> np.ndarray:
    """64x48 image whose eight 8-px stripes spell ``i`` in binary: survives lossy encoding."""
    image = np.zeros((48, 64, 3), np.uint8)
    for bit in range(8):
        if i >> bit & 1:
            image[:, 8 * bit:8 * bit + 8] = 255
    return image


def read_barcode(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if image[:, 8 * bit + 2:8 * bit + 6].mean() > 128)


def frames(n: int, video: str = "cam") -> list[Frame]:
    return [Frame(video=video, index=i, timestamp=i / FPS, epoch=1_761_390_000.0, image=barcode(i)) for i in range(n)]


def event(phase: str, started_at: float, duration: float, eid: str = "unattended-x-2") -> Event:
    return Event("unattended", phase, eid, "cam", (2,), ((1.0, 2.0, 3.0, 4.0),), 0.9, started_at, duration,
                 epoch=1_761_390_000.0, details={"waiting_time": duration})


def segmenter(directory, outbox: Outbox | bool = True, metrics_path: str | None = None, min_free_mb: float = 1024.0,
              timezone: str = "UTC", **settings) -> ClipCutter:
    """One camera's clip cutter on ``directory``, as the evidence service makes it (clips at 10 fps).

    ``outbox``: True for ``outbox.sqlite`` in ``directory``, False for none, or an outbox elsewhere.
    """
    directory.mkdir(parents=True, exist_ok=True)
    store = Outbox(directory / OUTBOX_NAME) if outbox is True else outbox or None
    recorder = ClipRecorder(store, directory, clip_per_event=settings.get("mode", "event") == "event")
    return ClipCutter(directory, ClipSettings(fps=FPS, **settings), recorder, DiskGuard(directory, min_free_mb),
                      metrics_path, timezone)


def clip_status(seg: ClipCutter) -> dict[str, float]:
    """What the status line shows of a camera's clips, its recorder and its disk."""
    return {**seg.status(), **seg.recorder.status(), **seg.disk.status()}


def run(seg: ClipCutter, stream: list[Frame], events: dict[int, list[Event]]) -> None:
    for f in stream:
        f.events = events.get(f.index, [])
        seg.process(f)
    last = stream[-1]
    seg.finish(Frame(video=last.video, index=last.index, timestamp=last.timestamp, image=last.image))
    seg.close()
    seg.recorder.retry(force=True, last=True)  # as the evidence service does after all its clips
    if seg.recorder.outbox is not None:
        seg.recorder.outbox.close()


def decoded(path):
    with av.open(str(path)) as c:
        out = [(f.time, read_barcode(f.to_ndarray(format="bgr24"))) for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.name == "h264"
    return out


def test_clip_starts_pre_roll_before_the_event_start_and_ends_post_roll_after_it(tmp_path):
    seg = segmenter(tmp_path, pre_roll=2.0, post_roll=1.0)
    # the event started at 3.0 s but the rule could only say so at 5.0 s (min_seconds 2)
    run(seg, frames(150), {50: [event("start", 3.0, 2.0)], 80: [event("end", 3.0, 4.9)]})
    [path] = seg.written
    assert path.name.startswith("segment_000001_20251025_110001_unattended_start")  # first frame: 1.0 s after epoch
    got = decoded(path)
    assert [index for _, index in got] == list(range(10, 90))  # first frame at 3.0 - 2.0 s, none missing
    asked = (3.0 + 4.9 + 1.0) - (3.0 - 2.0)
    assert got[-1][0] - got[0][0] == pytest.approx(asked, abs=1 / FPS)
    assert len(got) == 80  # frames 10..89
    [item] = Outbox(tmp_path / OUTBOX_NAME).all()
    assert item.state == "clip_written" and item.event["duration"] == pytest.approx(4.9) and item.part == 1


def test_the_status_shows_the_memory_the_pre_roll_holds(tmp_path):
    seg = segmenter(tmp_path, pre_roll=2.0, post_roll=1.0)
    assert seg.status()["preroll_mb"] == 0.0
    run(seg, frames(20), {})
    assert seg.status()["preroll_mb"] == 1.0  # 20 small frames fit the first MiB


def test_clip_names_and_recorded_times_are_in_the_sites_local_time(tmp_path):
    seg = segmenter(tmp_path, pre_roll=2.0, post_roll=1.0, timezone="Asia/Kolkata")
    run(seg, frames(100), {50: [event("start", 3.0, 2.0)], 80: [event("end", 3.0, 4.9)]})
    [path] = seg.written
    assert path.name.startswith("segment_000001_20251025_163001_unattended_start")  # 11:00:01 UTC is 16:30:01 IST
    [item] = Outbox(tmp_path / OUTBOX_NAME).all()
    assert item.event["start"] == "2025-10-25T16:30:03.000+05:30"


def test_long_event_continues_in_linked_parts_capped_at_max_seconds(tmp_path):
    seg = segmenter(tmp_path, pre_roll=0.0, post_roll=0.0, max_seconds=3.0)
    run(seg, frames(120), {10: [event("start", 1.0, 0.0)], 90: [event("end", 1.0, 8.0)]})
    names = [p.name for p in seg.written]
    assert len(names) == 3 and names[0].endswith("_start.mp4") and names[1].endswith("_part2.mp4")
    durations = [decoded(p)[-1][0] - decoded(p)[0][0] for p in seg.written]
    assert durations[0] == pytest.approx(2.9, abs=0.11) and durations[1] == pytest.approx(2.9, abs=0.11)
    assert all(d <= 3.0 for d in durations)
    items = Outbox(tmp_path / OUTBOX_NAME).all()
    assert [(i.event_id, i.part) for i in items] == [("unattended-x-2", 1), ("unattended-x-2", 2), ("unattended-x-2", 3)]


def test_a_queue_longer_than_a_clip_gets_its_evidence_linked(tmp_path):
    # the first clip is cut at max_seconds knowing two people; the queue ends with three,
    # and its metrics entry (written at the end) lists all three
    def queue(phase: str, ids: tuple[int, ...], duration: float) -> Event:
        return Event("queue", phase, "queue-x-till", "cam", ids, ((1.0, 2.0, 3.0, 4.0),) * len(ids), 0.9, 1.0,
                     duration, epoch=1_761_390_000.0, details={"max_length": len(ids), "waits": {}})

    seg = segmenter(tmp_path, pre_roll=0.0, post_roll=0.0, max_seconds=3.0)
    end = queue("end", (1, 2, 3), 8.0)
    run(seg, frames(120), {10: [queue("start", (1, 2), 0.0)], 90: [end]})
    first = Outbox(tmp_path / OUTBOX_NAME).find("queue-x-till", 1)
    assert first is not None and first.event["track_ids"] == [1, 2]
    metrics = AnalyticsFile(tmp_path / "analytics_metrics.json")
    metrics.add_event(end)
    evidence = VideoEvidence(Path(first.segment_path).name, "up.mp4", "https://h/up.mp4", "incident_1", "t")
    assert metrics.link_video_evidence(first.event_id, first.event["track_ids"], evidence, first.event["start"])


def test_time_mode_writes_back_to_back_segments_and_records_those_with_events(tmp_path):
    seg = segmenter(tmp_path, mode="time", max_seconds=2.0)
    run(seg, frames(70), {25: [event("start", 2.0, 0.5)]})
    assert len(seg.written) == 4  # 0-2, 2-4, 4-6, 6-7 s
    assert [i for p in seg.written for _, i in decoded(p)] == list(range(70))
    [item] = Outbox(tmp_path / OUTBOX_NAME).all()
    assert item.segment_path == str(seg.written[1])


def test_numbering_continues_after_a_restart(tmp_path):
    (tmp_path / "segment_7_20250101_000000_queue_start.mp4").write_bytes(b"x")
    seg = segmenter(tmp_path, outbox=False, pre_roll=0.0, post_roll=0.0)
    run(seg, frames(20), {5: [event("start", 0.5, 0.0)], 10: [event("end", 0.5, 0.5)]})
    assert seg.written[0].name.startswith("segment_000008_")  # zero-padded: names sort in recording order


def test_disk_nearly_full_skips_new_clips_but_keeps_going(tmp_path, caplog):
    seg = segmenter(tmp_path, pre_roll=1.0, post_roll=0.5, min_free_mb=1e12)  # more than any disk has: always "low"
    stream = frames(60)
    run(seg, stream, {20: [event("start", 1.0, 1.0)], 40: [event("end", 1.0, 3.0)]})
    assert seg.written == [] and list(tmp_path.glob("*.mp4*")) == []
    status = clip_status(seg)
    assert status["disk_low"] == 1.0 and status["clips_skipped"] == 1 and status["disk_free_mb"] > 0
    assert "DISK LOW" in caplog.text
    assert Outbox(tmp_path / OUTBOX_NAME).all() == []


def test_a_write_error_abandons_the_clip_not_the_pipeline(tmp_path, monkeypatch):
    seg = segmenter(tmp_path, pre_roll=1.0, post_roll=0.5)

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vizoflow.video.H264Writer.write", full)
    run(seg, frames(60), {20: [event("start", 1.0, 1.0)], 40: [event("end", 1.0, 3.0)]})
    assert seg.written == [] and clip_status(seg)["clips_skipped"] == 1
    assert list(tmp_path.glob("*.partial")) == []


def test_a_database_error_when_recording_a_clip_keeps_the_clip_and_the_pipeline_and_retries(tmp_path, monkeypatch, caplog):
    import sqlite3
    import time

    seg = segmenter(tmp_path, pre_roll=1.0, post_roll=0.5, min_free_mb=0)
    monkeypatch.setattr(seg.recorder, "RETRY_SECONDS", 0.0)
    real_record, broken = seg.recorder.outbox.record, {"on": True}

    def record(*args, **kwargs):
        if broken["on"]:
            raise sqlite3.OperationalError("disk I/O error")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(seg.recorder.outbox, "record", record)
    stream, events = frames(120), {20: [event("start", 1.0, 1.0)], 40: [event("end", 1.0, 3.0)]}
    for f in stream[:80]:  # the clip ends at 4.5 s: finalized and its recording fails
        f.events = events.get(f.index, [])
        seg.process(f)  # would raise "segment writer failed" if the error stopped the worker
    deadline = time.monotonic() + 30
    while clip_status(seg)["clips_unrecorded"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert clip_status(seg)["clips_unrecorded"] == 1 and clip_status(seg)["clips_written"] == 1
    [path] = seg.written
    assert path.is_file() and Outbox(tmp_path / OUTBOX_NAME).all() == []
    assert "could not record " + path.name in caplog.text and "analysis goes on" in caplog.text
    broken["on"] = False  # the database works again: the next frames record the clip
    for f in stream[80:]:
        seg.process(f)
    seg.close()
    [item] = Outbox(tmp_path / OUTBOX_NAME).all()
    assert item.segment_path == str(path) and item.state == "clip_written" and item.event_id == "unattended-x-2"
    assert clip_status(seg)["clips_unrecorded"] == 0 and "recorded after an earlier failure" in caplog.text


def test_a_clip_still_unrecorded_at_close_is_recorded_by_the_next_start(tmp_path, monkeypatch, caplog):
    import sqlite3

    seg = segmenter(tmp_path, pre_roll=1.0, post_roll=0.5, min_free_mb=0)

    def broken(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(seg.recorder.outbox, "record", broken)
    run(seg, frames(60), {20: [event("start", 1.0, 1.0)], 40: [event("end", 1.0, 3.0)]})
    [path] = seg.written
    note = path.with_name(path.name + ".unrecorded.json")
    assert path.is_file() and note.is_file() and Outbox(tmp_path / OUTBOX_NAME).all() == []
    assert "1 clip(s) could not be recorded" in caplog.text and path.name in caplog.text
    again = segmenter(tmp_path)  # the next run on the folder
    again.close()
    [item] = Outbox(tmp_path / OUTBOX_NAME).all()
    assert item.segment_path == str(path) and item.event_id == "unattended-x-2" and item.state == "clip_written"
    assert item.event["segment"]["filename"] == path.name and not note.exists()
