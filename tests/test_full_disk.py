"""A really full disk (a 2 MiB tmpfs made by the test) and injected database errors.

Analysis goes on, what could not be written is retried or reported, and nothing
already recorded is lost (docs/reliability.md, "Full disk and database errors").
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.evidence.test_clips import FPS, clip_status, event, frames, segmenter
from tests.nodes.test_analytics import event as metrics_event
from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.evidence.outbox import Outbox


def _mount(point: Path, image: Path) -> str:
    """Mount a small file system at ``point``: tmpfs, else a loop-mounted ext2 image. Returns how."""
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)], capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return "tmpfs"
    reasons = [f"mount -t tmpfs: {tmpfs.stderr.strip() or tmpfs.returncode}"]
    if shutil.which("mkfs.ext2"):
        with open(image, "wb") as fh:
            fh.truncate(4 * 2**20)
        made = subprocess.run(["mkfs.ext2", "-q", "-F", str(image)], capture_output=True, text=True)
        loop = subprocess.run(["mount", "-o", "loop", str(image), str(point)], capture_output=True, text=True)
        if made.returncode == 0 and loop.returncode == 0:
            return "loop"
        reasons.append(f"loop mount: {(made.stderr + loop.stderr).strip()}")
    else:
        reasons.append("no mkfs.ext2 for a loop image")
    pytest.skip("cannot make a small file system here (needs root or CAP_SYS_ADMIN): " + "; ".join(reasons))


@pytest.fixture
def small_fs(tmp_path):
    """A 2-4 MiB file system of its own, unmounted afterwards whatever happens."""
    point = tmp_path / "small"
    point.mkdir()
    _mount(point, tmp_path / "small.img")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full (ENOSPC); returns it (delete it to free the space)."""
    filler = directory / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    for size in (4096, 512, 1):  # the last few bytes as well
        try:
            with open(filler, "ab", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * size)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    assert shutil.disk_usage(directory).free < 4096
    return filler


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def three_queues(clips: Path, outbox: Path, monkeypatch, frames_total: int, third_at: int):
    """A segmenter (no free-space guard: the writes themselves must fail, recordings retried at
    once) and ``feed(first, last)`` handing it frames with three 0.5 s queue events: at frames
    10 and 60, and at ``third_at``."""
    seg = segmenter(clips, outbox=Outbox(outbox), pre_roll=0.5, post_roll=0.2, min_free_mb=0)
    monkeypatch.setattr(seg.recorder, "RETRY_SECONDS", 0.0)
    stream = frames(frames_total)
    events = {}
    for name, at in (("queue-a", 10), ("queue-b", 60), ("queue-c", third_at)):
        events[at] = [event("start", at / FPS, 0.5, name)]
        events[at + 10] = [event("end", at / FPS, 1.0, name)]

    def feed(first: int, last: int) -> None:
        for f in stream[first:last]:
            f.events = events.get(f.index, [])
            seg.process(f)  # raises if the segmenter gave up

    return seg, feed


def test_outbox_on_a_full_disk_refuses_the_row_keeps_the_others_and_stays_usable(small_fs):
    outbox = Outbox(small_fs / "outbox.sqlite")
    outbox.add("e1", 1, "queue", "/clips/a.mp4", {"n": 1})
    filler = fill(small_fs)
    with pytest.raises(sqlite3.OperationalError):
        for n in range(50):  # a few pages may still fit in space the database already holds
            outbox.add(f"e{n + 2}", 1, "queue", f"/clips/{n}.mp4", {"padding": "x" * 4000})
    stored = [item.event_id for item in outbox.all()]
    assert stored[0] == "e1" and not outbox._db.in_transaction  # nothing lost, no transaction left open
    filler.unlink()
    outbox.add("after", 1, "queue", "/clips/after.mp4", {"n": 2})
    assert [item.event_id for item in outbox.all()] == [*stored, "after"]
    outbox.close()


def test_full_disk_analysis_goes_on_pending_writes_land_once_space_is_back(small_fs, tmp_path, monkeypatch, caplog):
    """The outbox and analytics_metrics.json live on the small file system; clips elsewhere."""
    clips = tmp_path / "clips"
    metrics = AnalyticsFile(small_fs / "analytics_metrics.json")
    metrics.add_event(metrics_event(start=1.0))
    seg, feed = three_queues(clips, small_fs / "outbox.sqlite", monkeypatch, frames_total=240, third_at=110)

    feed(0, 50)
    wait_for(lambda: len(seg.recorder.outbox.all()) == 1)  # queue-a recorded before the disk fills
    filler = fill(small_fs)
    feed(50, 150)  # queue-b and queue-c end while the disk is full
    wait_for(lambda: clip_status(seg)["clips_written"] == 3 and clip_status(seg)["clips_queued"] == 0)
    metrics.add_event(metrics_event(start=2.0))  # does not raise
    metrics.add_event(metrics_event(start=3.0))
    status = clip_status(seg)
    assert status["clips_unrecorded"] >= 1 and metrics.unsaved  # reported in status ...
    assert "could not record" in caplog.text and "could not write" in caplog.text  # ... and in the log
    assert [i.event_id for i in seg.recorder.outbox.all()][0] == "queue-a"  # what was recorded is intact
    on_disk = json.loads((small_fs / "analytics_metrics.json").read_text())
    assert [e["start"] for e in on_disk["interaction_metrics"]["interaction_times"]] == ["2025-10-25T11:00:01.000+00:00"]
    assert all(p.is_file() for p in seg.written)  # every clip is kept on disk

    filler.unlink()  # space is back: the next frames and the next write land what waited
    feed(150, 240)
    seg.close()
    assert metrics.save()
    assert [i.event_id for i in Outbox(small_fs / "outbox.sqlite").all()] == ["queue-a", "queue-b", "queue-c"]
    assert {Path(i.segment_path) for i in Outbox(small_fs / "outbox.sqlite").all()} == set(seg.written)
    assert clip_status(seg)["clips_unrecorded"] == 0
    entries = json.loads((small_fs / "analytics_metrics.json").read_text())["interaction_metrics"]["interaction_times"]
    assert [e["start"][17:19] for e in entries] == ["01", "02", "03"]
    assert [p.name for p in small_fs.iterdir() if p.name.endswith(".tmp")] == []
    assert list(clips.glob("*.unrecorded.json")) == []  # the notes of the clips recorded late are gone


class _FailingCommit:
    """Wraps the outbox's connection: the next ``COMMIT`` raises like a disk error would."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.failures = db, 1

    def execute(self, sql: str, *args):
        if sql == "COMMIT" and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


def test_a_failed_commit_rolls_back_and_the_connection_stays_usable(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.add("kept", 1, "queue", "/a.mp4", {})
    real = outbox._db
    outbox._db = _FailingCommit(real)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        outbox.add("lost", 1, "queue", "/b.mp4", {})
    assert not real.in_transaction  # before the fix: still inside BEGIN IMMEDIATE
    assert [i.event_id for i in outbox.all()] == ["kept"]  # the failed transaction left nothing behind
    outbox.add("next", 1, "queue", "/c.mp4", {})  # before the fix: "cannot start a transaction within a transaction"
    assert [i.event_id for i in outbox.all()] == ["kept", "next"]
    other = Outbox(tmp_path / "o.sqlite")  # and no lock is held against other connections
    other.add("other", 1, "queue", "/d.mp4", {})
    assert [i.event_id for i in other.all()] == ["kept", "next", "other"]


def test_a_failed_commit_while_recording_a_clip_is_retried_not_fatal(tmp_path, monkeypatch):
    seg = segmenter(tmp_path, outbox=Outbox(tmp_path / "o.sqlite"), pre_roll=0.5, post_roll=0.2, min_free_mb=0)
    monkeypatch.setattr(seg.recorder, "RETRY_SECONDS", 0.0)
    seg.recorder.outbox._db = _FailingCommit(seg.recorder.outbox._db)
    stream = frames(60)
    for f in stream:
        f.events = {10: [event("start", 1.0, 0.5)], 20: [event("end", 1.0, 1.0)]}.get(f.index, [])
        seg.process(f)
    seg.close()
    [item] = Outbox(tmp_path / "o.sqlite").all()
    assert Path(item.segment_path) == seg.written[0] and os.path.isfile(item.segment_path)


def test_everything_on_one_full_disk_clips_are_lost_analysis_and_earlier_records_are_not(small_fs, monkeypatch, caplog):
    """Clips, outbox and metrics on the same full file system (the default layout: ``<evidence.dir>``)."""
    metrics = AnalyticsFile(small_fs / "analytics_metrics.json")
    metrics.add_event(metrics_event(start=1.0))
    seg, feed = three_queues(small_fs, small_fs / "outbox.sqlite", monkeypatch, frames_total=200, third_at=150)

    feed(0, 50)
    wait_for(lambda: len(seg.recorder.outbox.all()) == 1)
    first_clip = seg.written[0]
    size = first_clip.stat().st_size
    filler = fill(small_fs)
    feed(50, 120)  # queue-b: its clip cannot be written
    wait_for(lambda: clip_status(seg)["clips_queued"] == 0)
    metrics.add_event(metrics_event(start=2.0))
    status = clip_status(seg)
    assert status["clips_skipped"] + status["clips_unrecorded"] >= 1 and metrics.unsaved
    assert [i.event_id for i in seg.recorder.outbox.all()] == ["queue-a"] and first_clip.stat().st_size == size
    filler.unlink()
    feed(120, 200)  # queue-c after the space is back: written and recorded
    seg.close()
    assert metrics.save()
    ids = [i.event_id for i in Outbox(small_fs / "outbox.sqlite").all()]
    assert ids[0] == "queue-a" and ids[-1] == "queue-c"
    entries = json.loads((small_fs / "analytics_metrics.json").read_text())["interaction_metrics"]["interaction_times"]
    assert [e["start"][17:19] for e in entries] == ["01", "02"]
    assert list(small_fs.glob("*.partial")) == [] and list(small_fs.glob(".*.tmp")) == []


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary_file(small_fs):
    from vizoflow.files import write_json_atomic

    target = small_fs / "m.json"
    write_json_atomic(target, {"n": 1})
    filler = fill(small_fs)
    with pytest.raises(OSError) as info:
        write_json_atomic(target, {"n": 2, "padding": "x" * 100_000})
    assert info.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == {"n": 1}
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler.bin", "m.json"]  # the torn copy is gone
    filler.unlink()
