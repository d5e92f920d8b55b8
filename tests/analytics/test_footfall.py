"""Line counting on synthetic ground points with known answers (supervision #2598/#2578 cases)."""

from __future__ import annotations

import numpy as np
import pytest

from vizoflow.analytics.footfall import IN, OUT, LineCounter
from vizoflow.errors import ConfigError

DOOR = {"door": [[0, 100], [200, 100]]}  # drawn left to right: walking down the image is "in"


def walk(counter, steps, tid=1, t0=0.0, dt=0.1):
    """Feed one track along (x, y) points (None: not seen on that frame); all crossings."""
    found = []
    for i, p in enumerate(steps):
        ids, pts = ([], np.zeros((0, 2))) if p is None else ([tid], np.array([p], float))
        found += counter.update(t0 + i * dt, ids, pts)
    return found


def test_a_walk_down_across_the_line_is_one_in_and_back_up_one_out():
    c = LineCounter(DOOR)
    down = [(100, y) for y in range(60, 150, 5)]
    assert [x.direction for x in walk(c, down)] == [IN]
    assert [x.direction for x in walk(c, down[::-1], t0=5.0)] == [OUT]


def test_hesitating_on_the_line_counts_nothing_and_then_once():
    c = LineCounter(DOOR, margin=10)
    dither = [(100, 80)] + [(100, 100 + (8 if i % 2 else -8)) for i in range(30)]  # inside the +-10 px band
    assert walk(c, dither) == []
    assert [x.direction for x in walk(c, [(100, 95), (100, 115), (100, 130)], t0=3.1)] == [IN]


def test_flicker_while_crossing_keeps_the_side_and_counts_once():
    c = LineCounter(DOOR)
    steps = [(100, 70), (100, 80), None, None, (100, 105), None, (100, 120), (100, 95), (100, 125), (100, 140)]
    assert [x.direction for x in walk(c, steps)] == [IN]  # (100, 95) is inside the band: no way back out


def test_an_id_switch_on_the_line_counts_the_person_once():
    c = LineCounter(DOOR, reid_seconds=2.0, reid_px=40)
    before = walk(c, [(100, 60), (100, 75), (100, 88)], tid=7)
    after = walk(c, [(102, 96), (103, 112), (104, 130)], tid=8, t0=0.5)  # new id near where 7 was lost
    assert before == [] and [(x.track_id, x.direction) for x in after] == [(8, IN)]


def test_a_new_id_far_away_or_long_after_is_a_new_person():
    c = LineCounter(DOOR, reid_seconds=2.0, reid_px=40)
    walk(c, [(100, 60), (100, 88)], tid=7)
    assert walk(c, [(180, 120), (180, 140)], tid=8, t0=0.5) == []  # appeared below, far away: no crossing seen
    assert walk(c, [(100, 120), (100, 140)], tid=9, t0=10.0) == []  # 10 s later: not the lost one


def test_passing_beyond_the_end_of_the_line_is_not_a_crossing():
    c = LineCounter({"door": [[0, 100], [100, 100]]}, margin=10)
    assert walk(c, [(150, y) for y in range(60, 150, 5)]) == []
    assert len(walk(c, [(50, y) for y in range(60, 150, 5)], tid=2)) == 1


def test_two_points_are_needed():
    with pytest.raises(ConfigError, match="line 'door'"):
        LineCounter({"door": [[0, 0], [0, 0]]})
    with pytest.raises(ConfigError, match="line 'x'"):
        LineCounter({"x": [[0, 0]]})
