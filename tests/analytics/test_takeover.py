"""The re-identification takeover both line counting and dwell use."""

from __future__ import annotations

from vizoflow.analytics.takeover import nearest_lost


def test_the_nearest_track_lost_just_now_within_reach_is_taken_over():
    lost = [(1, 9.0, (100.0, 50.0)), (2, 9.5, (130.0, 50.0)), (3, 9.9, (105.0, 50.0)), (4, 9.9, None)]
    assert nearest_lost(10.0, (110.0, 50.0), lost, reid_seconds=2.0, reid_px=40.0) == 3
    assert nearest_lost(10.0, None, lost, reid_seconds=2.0, reid_px=40.0) is None  # no point: no takeover


def test_the_limits_are_inclusive_but_a_track_lost_on_this_very_frame_is_not_taken():
    assert nearest_lost(12.0, (140.0, 50.0), [(1, 10.0, (100.0, 50.0))], reid_seconds=2.0, reid_px=40.0) == 1
    assert nearest_lost(12.1, (100.0, 50.0), [(1, 10.0, (100.0, 50.0))], reid_seconds=2.0, reid_px=40.0) is None
    assert nearest_lost(10.0, (141.0, 50.0), [(1, 9.0, (100.0, 50.0))], reid_seconds=2.0, reid_px=40.0) is None
    assert nearest_lost(10.0, (100.0, 50.0), [(1, 10.0, (100.0, 50.0))], reid_seconds=2.0, reid_px=40.0) is None
    # equally near: the later in the order wins (as both copies did)
    assert nearest_lost(10.0, (100.0, 50.0), [(1, 9.0, (90.0, 50.0)), (2, 9.0, (110.0, 50.0))], 2.0, 40.0) == 2
