"""Staff/customer roles from time spent in staff zones."""

from __future__ import annotations

import numpy as np
import supervision as sv

from vizoflow.frame import Frame
from vizoflow.nodes.roles import ZoneRoles

IMAGE = np.zeros((400, 600, 3), np.uint8)
ZONES = {"counter": [[0, 0], [200, 0], [200, 200], [0, 200]]}


def frame(i: int, points: dict[int, tuple[float, float]], fps: float = 10) -> Frame:
    xyxy = np.array([[x - 10, y - 40, x + 10, y] for x, y in points.values()], dtype=float).reshape(-1, 4)
    det = sv.Detections(xyxy=xyxy, confidence=np.full(len(points), 0.9), tracker_id=np.array(list(points), dtype=int))
    return Frame(video="cam", index=i, timestamp=i / fps, image=IMAGE, detections=det)


def roles_over(node, stream):
    return [dict(zip(f.detections.tracker_id.tolist(), node.process(f).detections.data["role"].tolist())) for f in stream]


def test_time_behind_the_counter_makes_staff_for_good():
    # track 1 is behind the counter for frames 0..30 (3.0 s) then walks out; track 2 never goes there
    stream = [frame(i, {1: ((100, 100) if i <= 30 else (400, 300)), 2: (450, 300)}) for i in range(60)]
    got = roles_over(ZoneRoles(ZONES, staff_zones=["counter"], min_seconds=2.0), stream)
    assert got[19] == {1: "customer", 2: "customer"}
    assert got[20] == {1: "staff", 2: "customer"}  # 2.0 s summed at frame 20
    assert got[59] == {1: "staff", 2: "customer"}


def test_a_stalled_stream_does_not_make_staff():
    stream = [frame(0, {1: (100, 100)}), frame(100, {1: (100, 100)})]  # 10 s apart
    got = roles_over(ZoneRoles(ZONES, staff_zones=["counter"], min_seconds=2.0, max_step=1.0), stream)
    assert got[-1] == {1: "customer"}


def test_state_of_long_gone_tracks_is_forgotten():
    node = ZoneRoles(ZONES, staff_zones=["counter"], forget_seconds=5)
    node.process(frame(0, {1: (100, 100)}))
    node.process(frame(100, {2: (400, 300)}))
    assert set(node._last_seen) == {2}
