"""PersonFilter on synthetic tracks: what is dropped, and when a track becomes trusted."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.filters import PersonFilter

IMAGE = np.zeros((400, 600, 3), np.uint8)  # 240000 px
ZONES = {"poster": [[500, 0], [600, 0], [600, 400], [500, 400]]}


def frame(i: int, boxes: dict[int, tuple[float, float, float, float]], scores: dict[int, float] | None = None,
          video: str = "cam") -> Frame:
    ids = list(boxes)
    det = sv.Detections(xyxy=np.array([boxes[t] for t in ids], dtype=float).reshape(-1, 4),
                        confidence=np.array([(scores or {}).get(t, 0.8) for t in ids]),
                        class_id=np.zeros(len(ids), int), tracker_id=np.array(ids, dtype=int))
    return Frame(video=video, index=i, timestamp=i / 10, image=IMAGE, detections=det)


def trusted_over(node: PersonFilter, stream: list[Frame]) -> list[dict[int, bool]]:
    out = []
    for f in stream:
        det = node.process(f).detections
        out.append(dict(zip(det.tracker_id.tolist(), det.data["trusted"].tolist())))
    return out


def test_without_settings_every_track_is_trusted_after_the_score_window():
    got = trusted_over(PersonFilter(score_window=3), [frame(i, {1: (10, 10, 30, 60)}) for i in range(5)])
    assert got == [{1: False}, {1: False}, {1: True}, {1: True}, {1: True}]


def test_score_median_decides_and_once_trusted_stays_trusted():
    scores = [0.3, 0.3, 0.6, 0.6, 0.6, 0.2, 0.2, 0.2]
    stream = [frame(i, {1: (10, 10, 30, 60)}, {1: s}) for i, s in enumerate(scores)]
    got = trusted_over(PersonFilter(score_threshold=0.5, score_window=3), stream)
    assert [g[1] for g in got] == [False, False, False, True, True, True, True, True]  # median of 3 >= 0.5 at frame 3


def test_a_rack_that_never_moves_is_never_trusted_a_person_who_fidgets_is():
    def stream(i):
        arm = 6.0 if i % 4 == 2 else 0.0  # an arm out on frames 2, 6, 10, ...: 6 px of a 50 px box
        jitter = 2.0 if i % 3 == 1 else 0.0  # detector jitter on the rack: 2 px, under 10% of 50 px
        return frame(i, {1: (100, 100 + jitter, 120, 150), 2: (200, 100, 220 + arm, 150)})

    got = trusted_over(PersonFilter(min_motion=0.1, motion_frames=3, score_window=1), [stream(i) for i in range(40)])
    assert not any(g[1] for g in got)
    assert [g[2] for g in got[9:11]] == [False, True]  # third lively frame: 10


def test_masks_area_and_ratio_drop_boxes_on_every_frame():
    node = PersonFilter(zones=ZONES, masks=["poster"], min_area=0.001, max_area=0.2, min_ratio=0.2, max_ratio=1.0,
                        score_window=1)
    boxes = {1: (520, 100, 560, 200),   # ground point in the poster mask
             2: (10, 10, 14, 20),       # 40 px^2: too small
             3: (0, 0, 600, 350),       # most of the frame: too big
             4: (100, 100, 200, 120),   # 5:1 wide: a counter top, not a person
             5: (300, 100, 330, 200)}   # a person
    det = node.process(frame(0, boxes)).detections
    assert det.tracker_id.tolist() == [5] and det.data["trusted"].tolist() == [True]
    assert node.status()["boxes_dropped"] == 4


def test_state_restarts_with_a_new_video_and_forgets_old_tracks():
    node = PersonFilter(score_window=2, forget_seconds=5)
    trusted_over(node, [frame(i, {1: (10, 10, 30, 60)}, video="a") for i in range(3)])
    assert trusted_over(node, [frame(0, {1: (10, 10, 30, 60)}, video="b")]) == [{1: False}]
    node.process(frame(100, {2: (10, 10, 30, 60)}, video="b"))
    assert set(node._tracks) == {2}


def test_untracked_detections_pass_untrusted():
    f = frame(0, {1: (10, 10, 30, 60)})
    f.detections.tracker_id = None
    det = PersonFilter(score_window=1).process(f).detections
    assert det.data["trusted"].tolist() == [False]


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"min_area": 0.5, "max_area": 0.1}, "min_area <= max_area"),
    ({"min_ratio": 2.0, "max_ratio": 1.0}, "min_ratio <= max_ratio"),
    ({"score_threshold": 1.5}, "score_threshold in"),
    ({"min_motion": -1}, "min_motion >= 0"),
    ({"masks": ["nowhere"]}, "zone 'nowhere' is not defined"),
])
def test_bad_settings_are_clear_errors(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        PersonFilter(zones=ZONES, **kwargs)
