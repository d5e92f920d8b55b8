"""PersonFilter on synthetic tracks: what is dropped, and when a track becomes trusted.

The pixel tests draw small scenes: a textured background, a clothes rack (its own
texture, never changing), people drawn over it, and camera noise on every frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.filters import CHANGE, AppearanceChange, PersonFilter, cells_in_front

IMAGE = np.zeros((400, 600, 3), np.uint8)  # 240000 px
ZONES = {"poster": [[500, 0], [600, 0], [600, 400], [500, 400]]}
# the settings measured on the shared clips (the config's filters section; bench/trust.py)
MEASURED = {"score_threshold": 0.45, "score_window": 10, "min_change": 8.0, "change_seconds": 2.0,
            "life_seconds": 2.0, "walk_motion": 0.5, "life_memory": 10.0, "min_motion": 0.05, "motion_frames": 5}


def frame(i: int, boxes: dict[int, tuple[float, float, float, float]], scores: dict[int, float] | None = None,
          video: str = "cam", image: np.ndarray = IMAGE, fps: float = 10.0) -> Frame:
    ids = list(boxes)
    det = sv.Detections(xyxy=np.array([boxes[t] for t in ids], dtype=float).reshape(-1, 4),
                        confidence=np.array([(scores or {}).get(t, 0.8) for t in ids]),
                        class_id=np.zeros(len(ids), int), tracker_id=np.array(ids, dtype=int))
    return Frame(video=video, index=i, timestamp=i / fps, image=image, detections=det)


def trusted_over(node: PersonFilter, stream) -> list[dict[int, bool]]:
    out = []
    for f in stream:
        det = node.process(f).detections
        out.append(dict(zip(det.tracker_id.tolist(), det.data["trusted"].tolist())))
    return out


def first_trusted(node: PersonFilter, stream, tid: int) -> float | None:
    """Time of the first frame on which ``tid`` is trusted (None: never)."""
    for f in stream:
        det = node.process(f).detections
        if dict(zip(det.tracker_id.tolist(), det.data["trusted"].tolist())).get(tid):
            return f.timestamp
    return None


# --- synthetic scenes ------------------------------------------------------------------

_RNG = np.random.default_rng(7)
BACKGROUND = cv2.resize(_RNG.integers(70, 190, (30, 50)).astype(np.uint8), (400, 240), interpolation=cv2.INTER_NEAREST)
RACK_BOX = (100.0, 100.0, 150.0, 220.0)
RACK = cv2.resize(_RNG.integers(20, 230, (30, 13)).astype(np.uint8), (50, 120), interpolation=cv2.INTER_NEAREST)
PERSON_BOX = (300.0, 95.0, 360.0, 225.0)


def scene(t: float, noise: np.random.Generator, people=(), brightness: float = 0.0) -> np.ndarray:
    """The background, the rack, then each ``people`` drawer ``(image, t)``, then camera noise (sigma 2)."""
    img = BACKGROUND.astype(np.float32)
    img[100:220, 100:150] = RACK
    for draw in people:
        draw(img, t)
    img += 2.0 * noise.standard_normal(img.shape, dtype=np.float32) + brightness
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def cashier(img: np.ndarray, t: float) -> None:
    """A person behind a till who stands still and scans goods: her hand sweeps over the scanner and back."""
    img[100:225, 305:350] = 60.0
    img[95:120, 318:338] = 150.0  # head
    hand = int(round(150 + 25 * math.sin(2 * math.pi * t / 1.3)))  # up and down, 50 px, 0.77 times a second
    img[hand:hand + 16, 326:358] = 140.0  # forearm and hand


def swaying(img: np.ndarray, t: float) -> None:
    """A person who stands still, reading: only a slow sway (3 px each way, every 10 s) of a low-contrast body."""
    layer = np.zeros((130, 60), np.float32)
    layer[8:125, 12:48] = 1.0
    shift = 3.0 * math.sin(2 * math.pi * t / 10.0)
    layer = cv2.warpAffine(layer, np.float32([[1, 0, shift], [0, 1, 0]]), (60, 130), flags=cv2.INTER_LINEAR)
    region = img[95:225, 300:360]
    region[:] = region * (1 - layer) + 100.0 * layer


def passer_by(start: float):
    """Someone who walks left to right past the rack, crossing its box in about 0.7 s (from ``start``)."""
    def draw(img: np.ndarray, t: float) -> None:
        x = int(40 + (t - start) * 150)  # 150 px/s
        if start <= t and x < 260:
            img[90:230, x:x + 45] = 210.0
    return draw


def passer_box(start: float, t: float) -> tuple[float, float, float, float] | None:
    x = 40 + (t - start) * 150
    return (x, 90.0, x + 45, 230.0) if start <= t and x < 260 else None


def filmed(seconds: float, fps: float, people=(), boxes=None, jitter: float = 1.0, seed: int = 1, **kwargs):
    """Frames of ``scene`` with the rack as track 1 and the person as track 2; box jitter of ``jitter`` px."""
    noise, rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    for i in range(int(seconds * fps)):
        t = i / fps
        wobble = lambda box: tuple(v + rng.uniform(-jitter, jitter) for v in box)  # noqa: E731
        found = boxes(t) if boxes else {1: wobble(RACK_BOX), 2: wobble(PERSON_BOX)}
        yield frame(i, found, {tid: 0.6 for tid in found}, image=scene(t, noise, people, **kwargs), fps=fps)


# --- the score and the life tests ----------------------------------------------------------


def test_without_settings_every_track_is_trusted_after_the_score_window():
    got = trusted_over(PersonFilter(score_window=3), [frame(i, {1: (10, 10, 30, 60)}) for i in range(5)])
    assert got == [{1: False}, {1: False}, {1: True}, {1: True}, {1: True}]


def test_score_median_decides_and_once_trusted_stays_trusted():
    scores = [0.3, 0.3, 0.6, 0.6, 0.6, 0.2, 0.2, 0.2]
    stream = [frame(i, {1: (10, 10, 30, 60)}, {1: s}) for i, s in enumerate(scores)]
    got = trusted_over(PersonFilter(score_threshold=0.5, score_window=3), stream)
    assert [g[1] for g in got] == [False, False, False, True, True, True, True, True]  # median of 3 >= 0.5 at frame 3


def test_a_still_cashier_at_7_fps_is_trusted_within_3_seconds_the_rack_beside_her_never():
    frames = list(filmed(60, 7, people=[cashier]))
    got = trusted_over(PersonFilter(**MEASURED), [frame_copy(f) for f in frames])
    cashier_at = next(i for i, g in enumerate(got) if g[2]) / 7
    assert cashier_at <= 3.0  # four changed looks, half a second apart: about 2.3 s
    assert not any(g[1] for g in got)
    # the field report: the box test of earlier versions never trusts her (her box never moves 5%)
    blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), frames[0].image.shape)
    old = trusted_over(PersonFilter(**MEASURED), [frame_copy(f, image=blank) for f in frames])
    assert not any(g[2] for g in old)


def test_the_same_cashier_is_trusted_at_about_the_same_time_at_7_and_30_fps():
    at7 = first_trusted(PersonFilter(**MEASURED), filmed(10, 7, people=[cashier]), 2)
    at30 = first_trusted(PersonFilter(**MEASURED), filmed(10, 30, people=[cashier]), 2)
    assert at7 is not None and at30 is not None and abs(at7 - at30) <= 0.6


def test_a_person_standing_still_is_trusted_from_the_slow_drift_that_half_a_second_hides():
    drifting = list(filmed(20, 7, people=[swaying], jitter=0.5))
    at = first_trusted(PersonFilter(**MEASURED), drifting, 2)
    assert at is not None and at <= 8.0
    # compared over half a second only, the sway is lost in the noise, as it is on a rack
    assert first_trusted(PersonFilter(**{**MEASURED, "change_seconds": 0.5}), drifting, 2) is None


def test_a_rack_is_never_trusted_even_after_minutes():
    node = PersonFilter(**MEASURED)  # its score (0.6) passes: only life keeps it out
    got = trusted_over(node, filmed(300, 7, jitter=2.0))  # 5 minutes; the box jitters by 2 px, as weak boxes do
    assert not any(g[1] for g in got)


def test_a_rack_under_a_flickering_light_or_auto_exposure_is_not_trusted():
    flicker = lambda t: 25.0 * (int(t / 0.5) % 2)  # noqa: E731 - the whole picture 25 grey levels brighter, on and off
    noise, frames = np.random.default_rng(3), []
    for i in range(7 * 60):
        t = i / 7
        frames.append(frame(i, {1: RACK_BOX}, {1: 0.6}, image=scene(t, noise, brightness=flicker(t)), fps=7))
    assert not any(g[1] for g in trusted_over(PersonFilter(**MEASURED), frames))


def test_a_rack_briefly_occluded_by_passers_by_is_not_trusted_the_passers_by_are():
    starts = [5.0 + 20.0 * k for k in range(9)]  # someone walks past every 20 s, for 3 minutes

    def boxes(t: float) -> dict[int, tuple[float, float, float, float]]:
        out = {1: RACK_BOX}
        for k, start in enumerate(starts):
            box = passer_box(start, t)
            if box is not None:
                out[10 + k] = box
        return out

    got = trusted_over(PersonFilter(**MEASURED), filmed(180, 7, people=[passer_by(s) for s in starts],
                                                                  boxes=boxes))
    assert not any(g.get(1) for g in got)
    assert all(any(g.get(10 + k) for g in got) for k in range(len(starts)))  # each walker: trusted by walking


def test_a_rack_occluded_by_an_untracked_passer_by_is_not_trusted_either():
    starts = [5.0 + 20.0 * k for k in range(9)]  # the detector misses them: only the rack is a track
    got = trusted_over(PersonFilter(**MEASURED), filmed(180, 7, people=[passer_by(s) for s in starts],
                                                                  boxes=lambda t: {1: RACK_BOX}))
    assert not any(g[1] for g in got)


@pytest.mark.parametrize("cover", [(90.0, 110.0, 160.0, 235.0), (90.0, 150.0, 135.0, 235.0),
                                   (90.0, 150.0, 133.0, 235.0)],
                         ids=["whole", "lower left part", "an edge through a cell"])
def test_a_mannequin_someone_stands_in_front_of_is_not_trusted_the_person_is(cover):
    # caviar-shop-front: a shopper walked in front of a mannequin whose score is good; the pixels
    # in its box changed for as long as she was there, and that was her life, not its own
    def shopper(img: np.ndarray, t: float) -> None:  # 4 s in front of it (5-9 s), hands moving
        if 5.0 <= t < 9.0:
            x1, y1, x2, y2 = (int(v) for v in cover)
            img[y1:y2, x1:x2] = 90.0
            hand = int(round((y1 + y2) / 2 + 20 * math.sin(2 * math.pi * t / 1.1)))
            img[hand:hand + 12, x1:x2] = 200.0

    def boxes(t: float) -> dict[int, tuple[float, float, float, float]]:
        return {1: RACK_BOX, 2: cover} if 5.0 <= t < 9.0 else {1: RACK_BOX}

    got = trusted_over(PersonFilter(**MEASURED), filmed(20, 7, people=[shopper], boxes=boxes))
    assert not any(g[1] for g in got)
    assert any(g.get(2) for g in got)


def test_a_cashier_half_hidden_by_a_customer_in_front_is_still_trusted():
    customer = (290.0, 160.0, 340.0, 240.0)  # stands in front of the till, covering her lower left

    def standing(img: np.ndarray, t: float) -> None:
        img[160:240, 290:340] = 120.0

    at = first_trusted(PersonFilter(**MEASURED), filmed(20, 7, people=[cashier, standing],
                                                        boxes=lambda t: {2: PERSON_BOX, 3: customer}), 2)
    assert at is not None and at <= 4.0


def test_only_cells_under_a_box_nearer_the_camera_are_hidden():
    box = np.array([0.0, 0.0, 80.0, 160.0], np.float32)  # 8 x 16 cells of 10 px
    front = np.array([[0.0, 80.0, 40.0, 170.0]], np.float32)  # its bottom is lower: in front, the lower left quarter
    behind = np.array([[0.0, 80.0, 40.0, 150.0]], np.float32)  # its bottom is higher: behind
    hidden = cells_in_front(box, front, (640, 480))
    assert hidden.shape == (16, 8) and hidden.sum() == 32 and hidden[8:, :4].all()
    assert not cells_in_front(box, behind, (640, 480)).any()
    partly = np.array([[0.0, 80.0, 41.0, 170.0]], np.float32)  # a sliver of the fifth column too
    assert cells_in_front(box, partly, (640, 480))[8:, :5].all()
    assert not cells_in_front(box, np.zeros((0, 4), np.float32), (640, 480)).any()
    # a box half off the image: its cells are those of the part grey_patch sees
    assert cells_in_front(np.array([-80.0, 0.0, 80.0, 160.0], np.float32), front, (640, 480)).sum() == 32


def test_a_rack_someone_lingered_at_is_not_alive_for_ever_waiting_for_a_good_score():
    def browsing(img: np.ndarray, t: float) -> None:  # a shopper at the rack from 5 s to 9 s, moving her hands
        if 5.0 <= t < 9.0:
            img[110:220, 105:145] = 90.0
            hand = int(round(150 + 20 * math.sin(2 * math.pi * t / 1.1)))
            img[hand:hand + 12, 100:130] = 200.0

    noise, frames = np.random.default_rng(5), []
    for i in range(7 * 60):  # the rack's score is poor until 30 s, then good (the light changed, say)
        t = i / 7
        frames.append(frame(i, {1: RACK_BOX}, {1: 0.3 if t < 30 else 0.6}, image=scene(t, noise, [browsing]), fps=7))
    assert first_trusted(PersonFilter(**MEASURED), [frame_copy(f) for f in frames], 1) is None
    assert first_trusted(PersonFilter(**{**MEASURED, "life_memory": None}), [frame_copy(f) for f in frames], 1) == \
        pytest.approx(30.0, abs=1.0)  # remembered for ever, the browsing at 5-9 s makes the rack a person at 30 s


def test_a_walker_is_trusted_by_walking_before_the_pixel_test_could_be_sure():
    # a blank picture: no pixel change at all, only the box walking 1 m/s (40 px/s for a 100 px person)
    walk = [frame(i, {1: (10 + 4 * i, 50, 50 + 4 * i, 150)}, fps=10) for i in range(40)]
    at = first_trusted(PersonFilter(**MEASURED), walk, 1)
    assert at is not None and at <= 1.6  # half its height (50 px) after 1.25 s, held 0.25 s
    assert first_trusted(PersonFilter(**{**MEASURED, "walk_motion": 0.0}), walk, 1) is None


def test_a_box_that_jumps_once_is_not_a_walk():
    # one detection far off (another object's box for a frame), then back: not held for 0.25 s
    boxes = [(10, 50, 50, 150)] * 10 + [(110, 50, 150, 150)] + [(10, 50, 50, 150)] * 30
    got = trusted_over(PersonFilter(**MEASURED), [frame(i, {1: b}) for i, b in enumerate(boxes)])
    assert not any(g[1] for g in got)


# --- the pixel values from an upstream node, and frames without pixels ------------------


def test_an_upstream_appearance_node_gives_the_same_trust_and_replays_without_pixels():
    frames = list(filmed(12, 7, people=[cashier]))
    alone = trusted_over(PersonFilter(**MEASURED), [frame_copy(f) for f in frames])
    node, measured = AppearanceChange(), []  # one node for the whole stream, as in a graph
    for f in frames:
        measured.append(node.process(frame_copy(f)))
    assert trusted_over(PersonFilter(**MEASURED), [frame_copy(f) for f in measured]) == alone
    blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), frames[0].image.shape)  # what a track-cache replay carries
    replay = [frame_copy(f, image=blank) for f in measured]
    assert trusted_over(PersonFilter(**MEASURED), replay) == alone
    assert any(g[2] for g in alone)


def frame_copy(f: Frame, image: np.ndarray | None = None) -> Frame:
    det = f.detections
    copy = sv.Detections(xyxy=det.xyxy.copy(), confidence=det.confidence.copy(), class_id=det.class_id.copy(),
                         tracker_id=det.tracker_id.copy(), data={k: v.copy() for k, v in det.data.items()})
    return Frame(video=f.video, index=f.index, timestamp=f.timestamp, image=f.image if image is None else image,
                 detections=copy)


def test_appearance_values_are_nan_between_looks_and_for_untracked_boxes():
    node = AppearanceChange()
    values = [node.process(f).detections.data[CHANGE][1] for f in filmed(3, 10, people=[cashier])]
    looked = [i for i, v in enumerate(values) if not np.isnan(v)]
    assert looked == [5, 10, 15, 20, 25]  # every 0.5 s, from the second look on
    f = frame(0, {1: RACK_BOX})
    f.detections.tracker_id = None
    assert np.isnan(AppearanceChange().process(f).detections.data[CHANGE]).all()


def fidget(i: int, image: np.ndarray = IMAGE) -> Frame:
    arm = 6.0 if i % 4 == 2 else 0.0  # an arm out on frames 2, 6, 10, ...: 6 px of a 50 px box
    jitter = 2.0 if i % 3 == 1 else 0.0  # detector jitter on the rack: 2 px, under 10% of 50 px
    return frame(i, {1: (100, 100 + jitter, 120, 150), 2: (200, 100, 220 + arm, 150)}, image=image)


def test_a_rack_that_never_moves_is_never_trusted_a_person_who_fidgets_is():
    # the box test of earlier versions, what min_motion and motion_frames still mean without the pixel test
    got = trusted_over(PersonFilter(min_motion=0.1, motion_frames=3, score_window=1), [fidget(i) for i in range(40)])
    assert not any(g[1] for g in got)
    assert [g[2] for g in got[9:11]] == [False, True]  # third lively frame: 10


def test_frames_without_pixels_fall_back_to_the_box_test_of_earlier_versions():
    blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), IMAGE.shape)  # a track-cache replay's placeholder
    node = PersonFilter(min_change=8.0, min_motion=0.1, motion_frames=3, score_window=1)
    got = trusted_over(node, [fidget(i, blank) for i in range(40)])
    assert not any(g[1] for g in got)
    assert [g[2] for g in got[9:11]] == [False, True]
    nothing = trusted_over(PersonFilter(min_change=8.0, score_window=1), [fidget(i, blank) for i in range(3)])
    assert nothing == [{1: True, 2: True}] * 3  # min_motion 0: such replays trust on the score alone


# --- boxes dropped, state, settings ----------------------------------------------------------


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
    node = PersonFilter(score_window=2, forget_seconds=5, min_change=8.0)
    trusted_over(node, [frame(i, {1: (10, 10, 30, 60)}, video="a") for i in range(3)])
    assert trusted_over(node, [frame(0, {1: (10, 10, 30, 60)}, video="b")]) == [{1: False}]  # too few scores
    node.process(frame(100, {2: (10, 10, 30, 60)}, video="b"))
    assert set(node._tracks) == {2} and set(node.appearance._tracks) == {2}


def test_untracked_detections_pass_untrusted():
    f = frame(0, {1: (10, 10, 30, 60)})
    f.detections.tracker_id = None
    det = PersonFilter(score_window=1).process(f).detections
    assert det.data["trusted"].tolist() == [False]


def test_boxes_off_the_image_do_not_break_the_looks():
    boxes = lambda t: {1: (-50.0, -20.0, 10.0, 60.0), 2: (390.0, 230.0, 500.0, 300.0), 3: (5.0, 5.0, 5.0, 5.0)}  # noqa: E731
    got = trusted_over(PersonFilter(**MEASURED), filmed(5, 10, boxes=boxes))
    assert not any(any(g.values()) for g in got)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"min_area": 0.5, "max_area": 0.1}, "min_area <= max_area"),
    ({"min_ratio": 2.0, "max_ratio": 1.0}, "min_ratio <= max_ratio"),
    ({"score_threshold": 1.5}, "score_threshold in"),
    ({"min_change": -1}, "min_change >= 0"),
    ({"walk_motion": -0.5}, "walk_motion >= 0"),
    ({"change_seconds": 0}, "change_seconds > 0"),
    ({"life_memory": -1}, "life_memory >= 0"),
    ({"min_motion": -1}, "min_motion >= 0"),
    ({"masks": ["nowhere"]}, "zone 'nowhere' is not defined"),
])
def test_bad_settings_are_clear_errors(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        PersonFilter(zones=ZONES, **kwargs)
