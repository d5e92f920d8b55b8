"""The outbox's look-up of clips by file name, and its migration of older files."""

from __future__ import annotations

import os
import sqlite3

from vizoflow.evidence.outbox import LINKED, LOOKUP_CHUNK, NEW, REPLACED, Outbox
from vizoflow.evidence.retention import Retention


def test_clips_are_found_by_name_in_any_number_of_rows(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    n = 2 * LOOKUP_CHUNK + 7
    for i in range(n):
        outbox.add(f"ev{i}", 1, "queue", str(tmp_path / f"segment_{i:06d}_queue_start.mp4"), {"kind": "queue"})
    asked = [f"segment_{i:06d}_queue_start.mp4" for i in range(3, n, 3)] + ["segment_999999_unknown.mp4"]
    found = outbox.by_segment_name(asked)
    assert sorted(found) == sorted(asked[:-1])
    assert all(found[name].event_id == f"ev{int(name[8:14])}" for name in found)
    assert len(outbox.segment_names()) == n
    outbox.close()


def test_a_replaced_clip_is_found_by_its_new_name_only(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.record("ev1", 1, "queue", str(tmp_path / "segment_000001_a.mp4"), {}, None)[1] == NEW
    # the first clip is lost and was never uploaded: a re-run's clip takes the row over
    assert outbox.record("ev1", 1, "queue", str(tmp_path / "segment_000002_b.mp4"), {}, None)[1] == REPLACED
    assert list(outbox.by_segment_name(["segment_000001_a.mp4", "segment_000002_b.mp4"])) == ["segment_000002_b.mp4"]
    assert outbox.segment_names() == ["segment_000002_b.mp4"]
    outbox.close()


def test_an_outbox_from_before_clip_names_gets_them_and_retention_still_deletes_delivered_clips(tmp_path):
    clip = tmp_path / "segment_000001_x_unattended_start.mp4"
    clip.write_bytes(b"\0" * 1000)
    os.utime(clip, (1_000.0, 1_000.0))  # long ago
    outbox = Outbox(tmp_path / "outbox.sqlite")
    item = outbox.add("ev1", 1, "unattended", str(clip), {"kind": "unattended"})
    outbox.advance(item, LINKED, video_url="https://s3/vizo361/x.mp4")
    outbox.close()
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:  # as an older vizoflow wrote it
        db.execute("DROP INDEX evidence_segment_name")
        db.execute("ALTER TABLE evidence DROP COLUMN segment_name")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.segment_names() == [clip.name]
    assert Retention(outbox, tmp_path, max_age_hours=1.0).sweep().deleted == [clip.name]
    assert not clip.exists()
    outbox.close()
