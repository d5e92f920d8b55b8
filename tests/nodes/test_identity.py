"""The identity layer on synthetic tracklets: stitched through id switches, split at jumps."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from vizoflow.analytics.footfall import LineCounter
from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.geometry import ground_points
from vizoflow.nodes.identity import PersonIdentity
from vizoflow.nodes.roles import ZoneRoles

FPS = 10
IMAGE = np.zeros((400, 600, 3), np.uint8)


def frame(i: int, tracks: dict[int, tuple[float, float]], features: dict[int, np.ndarray] | None = None) -> Frame:
    """Frame ``i`` at 10 fps: track id -> ground point of a 100 px tall box, with optional features."""
    ids = list(tracks)
    xyxy = np.array([[x - 20, y - 100, x + 20, y] for x, y in tracks.values()], dtype=float).reshape(-1, 4)
    det = sv.Detections(xyxy=xyxy, confidence=np.full(len(ids), 0.9), class_id=np.zeros(len(ids), int),
                        tracker_id=np.array(ids, dtype=int))
    if features is not None:
        det.data["embedding"] = np.stack([features[t] for t in ids]) if ids else np.zeros((0, 4), np.float32)
    return Frame(video="cam", index=i, timestamp=i / FPS, image=IMAGE, detections=det)


def persons(node: PersonIdentity, stream: list[Frame]) -> list[dict[int, int]]:
    """Per frame: tracker id -> person id."""
    out = []
    for f in stream:
        node.process(f)
        out.append(dict(zip(f.detections.data["track_id"].tolist(), f.detections.tracker_id.tolist())))
    return out


def test_a_new_tracklet_where_a_person_was_lost_moments_ago_is_that_person():
    # track 1 walks right, is lost for 0.5 s (hidden), and comes back as track 9
    stream = [frame(i, {1: (100 + 5 * i, 300)}) for i in range(20)]
    stream += [frame(i, {}) for i in range(20, 25)]
    stream += [frame(i, {9: (100 + 5 * i, 300)}) for i in range(25, 40)]
    seen = persons(PersonIdentity(), stream)
    assert seen[0][1] == seen[-1][9]


def test_a_tracker_id_that_jumps_further_than_a_person_can_move_is_a_new_person():
    # track 3 is at x=100 until frame 9, then on frame 10 the tracker hands it to someone at x=400
    stream = [frame(i, {3: (100 if i < 10 else 400, 300)}) for i in range(20)]
    seen = persons(PersonIdentity(), stream)
    assert seen[9][3] != seen[10][3] and seen[10][3] == seen[19][3]


def test_people_seen_at_once_are_never_one_person():
    stream = [frame(i, {1: (100, 300), 2: (130, 300)}) for i in range(10)]
    stream += [frame(i, {1: (100, 300), 5: (130, 300)}) for i in range(10, 20)]  # 2 switches to 5
    seen = persons(PersonIdentity(), stream)
    assert seen[0][1] != seen[0][2] and seen[-1][5] == seen[0][2] and seen[-1][1] == seen[0][1]


def test_a_new_tracklet_that_looks_clearly_different_is_someone_else():
    red, blue = np.array([1.0, 0, 0, 0], np.float32), np.array([0, 1.0, 0, 0], np.float32)
    stream = [frame(i, {1: (100, 300)}, {1: red}) for i in range(10)]
    stream += [frame(i, {7: (105, 300)}, {7: blue}) for i in range(12, 20)]
    seen = persons(PersonIdentity(max_appearance=0.2), stream)
    assert seen[0][1] != seen[-1][7]
    stream = [frame(i, {1: (100, 300)}, {1: red}) for i in range(10)]
    stream += [frame(i, {7: (105, 300)}, {7: red}) for i in range(12, 20)]
    seen = persons(PersonIdentity(max_appearance=0.2), stream)
    assert seen[0][1] == seen[-1][7]


def twin_frame(i: int, boxes: dict[int, tuple[float, float, float, float]], looks: bool = True) -> Frame:
    """Frame ``i`` at 10 fps with explicit boxes (track id -> xyxy), all looking alike unless ``looks`` is off."""
    det = sv.Detections(xyxy=np.array(list(boxes.values()), dtype=float).reshape(-1, 4),
                        confidence=np.full(len(boxes), 0.9), class_id=np.zeros(len(boxes), int),
                        tracker_id=np.array(list(boxes), dtype=int))
    if looks:
        det.data["embedding"] = np.tile(np.array([1.0, 0, 0, 0], np.float32), (len(boxes), 1))
    return Frame(video="cam", index=i, timestamp=i / FPS, image=IMAGE, detections=det)


def test_a_second_box_on_the_same_body_takes_the_person_over_when_the_first_is_lost():
    # track 1 is a person; from frame 10 the tracker also follows their upper body as track 2,
    # and loses track 1 at frame 15: track 2 is that person from then on
    body, upper = (80, 200, 120, 300), (82, 205, 118, 260)

    def stream(looks: bool) -> list[Frame]:
        return ([twin_frame(i, {1: body}, looks) for i in range(10)]
                + [twin_frame(i, {1: body, 2: upper}, looks) for i in range(10, 15)]
                + [twin_frame(i, {2: upper}, looks) for i in range(15, 25)])

    seen = persons(PersonIdentity(), stream(looks=True))
    assert seen[12][2] != seen[12][1]  # two boxes at once are never one person
    assert seen[-1][2] == seen[0][1]
    seen = persons(PersonIdentity(), stream(looks=False))  # without appearance a box behind is not a twin
    assert seen[-1][2] != seen[0][1]


def test_two_boxes_born_on_one_body_at_once_keep_their_own_persons():
    # caviar-shop-front: tracks 1 and 2 start on one body at the same look, track 1 is lost
    # after one look; neither box came first, so track 2 stays who it was (no extra switch)
    body, upper = (80, 200, 120, 300), (82, 205, 118, 260)
    stream = [twin_frame(0, {1: body, 2: upper})] + [twin_frame(i, {2: upper}) for i in range(1, 10)]
    seen = persons(PersonIdentity(), stream)
    assert seen[-1][2] == seen[0][2] != seen[0][1]


def test_a_young_tracklet_seen_elsewhere_never_takes_a_lost_person_over():
    # track 2 starts 60 px beside track 1, walks into its place when track 1 is lost
    stream = [twin_frame(i, {1: (80, 200, 120, 300)}) for i in range(10)]
    stream += [twin_frame(i, {1: (80, 200, 120, 300), 2: (140, 200, 180, 300)}) for i in range(10, 15)]
    stream += [twin_frame(i, {2: (140 - 10 * (i - 14), 200, 180 - 10 * (i - 14), 300)}) for i in range(15, 25)]
    seen = persons(PersonIdentity(), stream)
    assert seen[-1][2] != seen[0][1]
    assert len({p for f in seen for p in f.values()}) == 2


def test_a_person_lost_longer_than_the_gap_is_a_new_visit():
    stream = [frame(i, {1: (100, 300)}) for i in range(10)] + [frame(i, {2: (100, 300)}) for i in range(60, 70)]
    seen = persons(PersonIdentity(max_gap_seconds=4.0), stream)
    assert seen[0][1] != seen[-1][2]


def test_a_cashier_keeps_the_staff_role_through_an_id_switch_behind_the_counter():
    """The cashier (track 1) stands in the staff zone for 6 s, is hidden by a colleague passing in
    front for 0.4 s and comes back as track 8: still staff at once, while a customer (track 2) who
    takes over nobody's id stays a customer."""
    zones = {"counter": [[0, 250], [300, 250], [300, 350], [0, 350]]}
    identity, roles = PersonIdentity(), ZoneRoles(zones, staff_zones=["counter"], min_seconds=5.0)
    seen = []
    for i in range(90):
        tracks = {2: (450, 300)}
        if i < 60:
            tracks[1] = (150, 300)
        elif i >= 64:
            tracks[8] = (152, 300)
        f = roles.process(identity.process(frame(i, tracks)))
        seen.append(dict(zip(f.detections.data["track_id"].tolist(), f.detections.data["role"].tolist())))
    assert seen[59][1] == "staff" and seen[64][8] == "staff" and seen[89][2] == "customer"


def test_a_teleport_across_a_line_is_not_a_crossing():
    """Track 4 stands left of the line; the walker on the right is hidden and the tracker hands
    the walker's id (5) to the person standing left: with persons, nobody crossed."""
    identity, counter = PersonIdentity(), LineCounter({"door": [[300, 0], [300, 400]]}, margin=10)
    counted = []
    for i in range(30):
        tracks = {4: (230, 300)} if i < 15 else {}
        tracks[5] = (380, 300) if i < 15 else (232, 300)  # the id jumps 150 px in 0.1 s
        f = identity.process(frame(i, tracks))
        counted += counter.update(f.timestamp, f.detections.tracker_id.tolist(), ground_points(f.detections.xyxy))
    assert counted == []
    # the same step made by the raw tracker ids is counted: the layer is what prevents it
    raw = LineCounter({"door": [[300, 0], [300, 400]]}, margin=10)
    assert raw.update(0.0, [5], np.array([[380.0, 300.0]])) == [] and raw.update(1.5, [5], np.array([[232.0, 300.0]]))


@pytest.mark.parametrize("kwargs", [{"max_speed": 0}, {"max_gap_seconds": -1}, {"feature_momentum": 1.0},
                                    {"adopt_seconds": -1}, {"twin_overlap": 0}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="identity"):
        PersonIdentity(**kwargs)


def test_a_twin_box_never_takes_over_a_person_whose_looks_are_unknown():
    # the first box had no appearance features (e.g. from a replay without them): no adoption
    body, upper = (80, 200, 120, 300), (82, 205, 118, 260)
    stream = [twin_frame(i, {1: body}, looks=False) for i in range(10)]
    stream += [twin_frame(i, {1: body, 2: upper}, looks=False) for i in range(10, 15)]
    stream += [twin_frame(i, {2: upper}) for i in range(15, 25)]
    seen = persons(PersonIdentity(), stream)
    assert seen[-1][2] != seen[0][1]
