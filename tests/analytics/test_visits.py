"""Occupancy per minute and dwell visits on synthetic frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from vizoflow.analytics.visits import DwellMeter, OccupancyMeter


def test_occupancy_is_the_mean_and_max_over_each_minutes_frames_per_role_and_for_the_camera():
    meter = OccupancyMeter(["till"])
    rows = []
    for i in range(120):  # two minutes at 1 fps: 1 customer in the till, then 3 for the last 30 s of minute one
        roles = np.array(["staff", "customer", "customer", "customer"][: 2 if i < 30 or i >= 60 else 4])
        inside = {"till": np.array([False] + [True] * (len(roles) - 1))}
        rows += meter.update(600.0 + i, roles, inside)
    rows += meter.flush()
    got = {(r.minute, r.zone, r.role): (r.mean, r.max, r.frames) for r in rows}
    assert got[(600.0, "till", "customer")] == (2.0, 3, 60)  # (30 x 1 + 30 x 3) / 60
    assert got[(600.0, "till", "staff")] == (0.0, 0, 60)
    assert got[(600.0, "camera", "all")] == (3.0, 4, 60)
    assert got[(660.0, "till", "customer")] == (1.0, 1, 60)


def feed(meter, presence, dt=0.5):
    """presence: per frame, the set of track ids inside zone 'shelf' (all seen, customers)."""
    ended = []
    for i, ids in enumerate(presence):
        ids = sorted(ids)
        ended += meter.update(i * dt, ids, ["customer"] * len(ids), {"shelf": np.ones(len(ids), bool)})
    return ended + meter.flush()


def test_a_visit_that_leaves_and_returns_is_two_visits_and_flicker_is_one():
    meter = DwellMeter(["shelf"], gap_seconds=2.0)
    frames = [{1}] * 10 + [set()] * 2 + [{1}] * 10 + [set()] * 10 + [{1}] * 4  # 1 s gap (flicker), then 5 s away
    visits = feed(meter, frames)
    assert [(v.start, v.end) for v in visits] == [(0.0, 10.5), (16.0, 17.5)]
    assert visits[0].seconds == pytest.approx(10.5)


def test_visits_of_two_people_are_apart_and_a_staff_visit_keeps_its_role():
    meter = DwellMeter(["shelf"], gap_seconds=1.0)
    meter.update(0.0, [1, 2], ["customer", "staff"], {"shelf": np.array([True, True])})
    meter.update(1.0, [1, 2], ["customer", "staff"], {"shelf": np.array([True, False])})
    ended = meter.update(3.0, [1], ["customer"], {"shelf": np.array([False])})
    assert [(v.track_id, v.role, v.seconds) for v in ended] == [(1, "customer", 1.0), (2, "staff", 0.0)]


def test_an_id_switch_inside_a_zone_continues_the_visit_under_the_new_id():
    meter = DwellMeter(["shelf"], gap_seconds=2.0, reid_seconds=2.0, reid_px=40)
    ended = []
    for i in range(20):  # id 1 until 5 s, then the tracker calls the same person 2, 10 px further
        tid, x = (1, 100.0) if i < 10 else (2, 110.0)
        ended += meter.update(i * 0.5, [tid], ["customer"], {"shelf": np.array([True])}, points=np.array([[x, 50.0]]))
    ended += meter.flush()
    assert [(v.track_id, v.aliases, v.start, v.end) for v in ended] == [(2, (1,), 0.0, 9.5)]


def test_a_visit_ended_before_trust_is_held_until_the_track_is_trusted_and_a_never_trusted_one_never_counts():
    meter = DwellMeter(["shelf"], gap_seconds=1.0)
    for i in range(4):  # in the shelf zone 0-1.5 s, untrusted
        meter.update(i * 0.5, [1, 2], ["customer"] * 2, {"shelf": np.array([True, True])}, trusted=[False, False])
    assert meter.update(3.0, [1, 2], ["customer"] * 2, {"shelf": np.array([False, False])}, trusted=[False, False]) == []
    released = meter.update(3.5, [1, 2], ["customer"] * 2, {"shelf": np.array([False, False])}, trusted=[True, False])
    assert [(v.track_id, v.start, v.end) for v in released] == [(1, 0.0, 1.5)]
    assert meter.flush() == []  # track 2 (a rack) never was trusted


def test_an_untrusted_box_taking_over_a_visit_does_not_stretch_it():
    meter = DwellMeter(["shelf"], gap_seconds=2.0, reid_seconds=2.0, reid_px=40)
    ended = []
    for i in range(200):  # a person (trusted) until 4.5 s; then a rack box 5 px away, never trusted, stays
        tid, x, trust = (1, 100.0, True) if i < 10 else (9, 105.0, False)
        ended += meter.update(i * 0.5, [tid], ["customer"], {"shelf": np.array([True])}, trusted=[trust],
                              points=np.array([[x, 50.0]]))
    ended += meter.flush()
    assert [(v.track_id, v.start, v.end) for v in ended] == [(1, 0.0, 4.5)]
