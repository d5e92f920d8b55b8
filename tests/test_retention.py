"""Retention deletes delivered clips beyond the limits and nothing else."""

from __future__ import annotations

import os

import pytest

from vizoflow.errors import ConfigError
from vizoflow.evidence.outbox import LINKED, REPORTED, UPLOADED, Outbox
from vizoflow.evidence.retention import Retention

NOW = 1_800_000_000.0
HOUR = 3600.0
MB = 2**20


@pytest.fixture
def folder(tmp_path):
    """Six 1-MB clips, one per hour from 6 h ago; states as a real day would leave them."""
    outbox = Outbox(tmp_path / "outbox.sqlite")
    layout = [  # name, age in hours, state, url
        ("segment_1_a_unattended_start.mp4", 6, LINKED, "https://s3/vizo361/a.mp4"),
        ("segment_2_b_unattended_start.mp4", 5, UPLOADED, "https://s3/vizo361/b.mp4"),   # report pending
        ("segment_3_c_queue_start.mp4", 4, REPORTED, "https://s3/vizo361/c.mp4"),
        ("segment_4_d_unattended_start.mp4", 3, LINKED, "file:///local/d.mp4"),         # local-only evidence
        ("segment_5_e_unattended_start.mp4", 2, LINKED, "https://s3/vizo361/e.mp4"),
        ("segment_6_f_unattended_start.mp4", 1, None, None),                           # just written
    ]
    for i, (name, age, state, url) in enumerate(layout):
        path = tmp_path / name
        path.write_bytes(b"\0" * MB)
        os.utime(path, (NOW - age * HOUR, NOW - age * HOUR))
        item = outbox.add(f"ev{i}", 1, "unattended", str(path), {"kind": "unattended"})
        if state is not None:
            outbox.advance(item, state, video_url=url)
    (tmp_path / "notes.mp4").write_bytes(b"\0" * MB)  # unknown to the outbox
    os.utime(tmp_path / "notes.mp4", (NOW - 9 * HOUR, NOW - 9 * HOUR))
    yield outbox, tmp_path
    outbox.close()


def names(path):
    return sorted(p.name[:9] for p in path.glob("*.mp4"))


def test_age_limit_deletes_only_delivered_clips(folder):
    outbox, path = folder
    sweep = Retention(outbox, path, max_age_hours=2.5, clock=lambda: NOW).sweep()
    assert sorted(sweep.deleted) == ["segment_1_a_unattended_start.mp4", "segment_3_c_queue_start.mp4"]
    assert sweep.freed_bytes == 2 * MB
    # pending (2), local-only (4), recent (5), unrecorded (6) and the unknown file stay
    assert names(path) == ["notes.mp4", "segment_2", "segment_4", "segment_5", "segment_6"]


def test_size_limit_deletes_oldest_delivered_first_and_never_pending(folder):
    outbox, path = folder
    sweep = Retention(outbox, path, max_total_gb=5.5 * MB / 2**30, clock=lambda: NOW).sweep()
    assert sweep.deleted == ["segment_1_a_unattended_start.mp4", "segment_3_c_queue_start.mp4"]
    assert not sweep.over_limit and sweep.total_bytes == 5 * MB

    sweep = Retention(outbox, path, max_total_gb=1 * MB / 2**30, clock=lambda: NOW).sweep()
    assert sweep.deleted == ["segment_5_e_unattended_start.mp4"]  # the only delivered clip left
    assert sweep.over_limit and sweep.undeletable_bytes == 4 * MB  # pending, local, unrecorded, unknown
    assert names(path) == ["notes.mp4", "segment_2", "segment_4", "segment_6"]


def test_eventless_time_segments_go_by_the_limits_once_old(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    old, fresh = tmp_path / "segment_1_x_time_start.mp4", tmp_path / "segment_2_y_time_start.mp4"
    for p, age in ((old, 2 * HOUR), (fresh, 60)):
        p.write_bytes(b"\0" * 10)
        os.utime(p, (NOW - age, NOW - age))
    sweep = Retention(outbox, tmp_path, max_age_hours=0.01, clock=lambda: NOW).sweep()
    assert sweep.deleted == [old.name] and fresh.exists()
    outbox.close()


def test_no_limits_means_nothing_is_touched_and_bad_limits_are_config_errors(folder):
    outbox, path = folder
    assert Retention(outbox, path, clock=lambda: NOW).sweep().deleted == []
    assert len(names(path)) == 7
    with pytest.raises(ConfigError, match="retention"):
        Retention(outbox, path, max_age_hours=0)
