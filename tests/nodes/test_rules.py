"""Rules on synthetic track streams: pure data, no video, timing exact to one frame."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.rules import InteractionRule, QueueRule, UnattendedRule

FPS = 10
IMAGE = np.zeros((400, 600, 3), np.uint8)
ZONES = {"store": [[0, 0], [400, 0], [400, 400], [0, 400]], "queue": [[400, 0], [600, 0], [600, 400], [400, 400]]}


def frame(i: int, people: dict[int, tuple[float, float, str]], video: str = "cam", clock0: float = 0.0,
          tracked: bool = True, untrusted: set[int] = frozenset()) -> Frame:
    """Frame ``i`` at 10 fps; ``people`` maps track id to ground point and role; ``untrusted``
    tracks are not (yet) trusted to be people by the person filter."""
    ids = list(people)
    xyxy = np.array([[x - 10, y - 40, x + 10, y] for x, y, _ in people.values()], dtype=float).reshape(-1, 4)
    det = sv.Detections(xyxy=xyxy, confidence=np.full(len(ids), 0.8), class_id=np.zeros(len(ids), int),
                        tracker_id=np.array(ids, dtype=int) if tracked else None,
                        data={"role": np.array([r for *_, r in people.values()]),
                              "trusted": np.array([t not in untrusted for t in ids], dtype=bool)})
    return Frame(video=video, index=i, timestamp=clock0 + i / FPS, image=IMAGE, detections=det)


def run(rule, stream):
    """Feed frames; return (frame index, event) for every event, plus the end-of-stream ones."""
    out, last = [], None
    for f in stream:
        rule.process(f)
        out += [(f.index, e) for e in f.events]
        last = f
    end = Frame(video=last.video, index=last.index, timestamp=last.timestamp, image=IMAGE)
    out += [(None, e) for e in rule.finish(end).events]
    return out


def phases(events):
    return [(i, e.phase) for i, e in events]


def test_interaction_starts_and_ends_exactly_one_frame_after_the_thresholds():
    # customer 2 stands next to staff 1 from frame 10 (1.0 s) to frame 60 (6.0 s)
    stream = [frame(i, {1: (100, 100, "staff"), 2: ((120 if 10 <= i <= 60 else 350), 100, "customer")}) for i in range(100)]
    events = run(InteractionRule(max_distance=50, min_seconds=2.0, gap_seconds=1.0), stream)
    assert phases(events) == [(30, "start"), (71, "end")]  # 2.0 s after 1.0; first frame more than 1.0 s after 6.0
    start, end = events[0][1], events[1][1]
    assert start.event_id == end.event_id and start.track_ids == (1, 2)
    assert start.started_at == pytest.approx(1.0) and end.duration == pytest.approx(5.0)
    assert start.boxes == ((90.0, 60.0, 110.0, 100.0), (110.0, 60.0, 130.0, 100.0))
    assert end.confidence == pytest.approx(0.8)


def test_held_exactly_min_seconds_is_enough_for_an_interaction():
    stream = [frame(i, {1: (100, 100, "staff"), 2: ((120 if i <= 20 else 400), 100, "customer")}) for i in range(40)]
    events = run(InteractionRule(max_distance=50, min_seconds=2.0, gap_seconds=0.5), stream)
    assert phases(events) == [(20, "start"), (26, "end")]


@pytest.mark.parametrize(("missing", "expected", "durations"), [
    (range(31, 39), [(20, "start"), (None, "end")], [2.0, 9.0]),  # 0.8 s hole: one event
    (range(31, 50), [(20, "start"), (41, "end"), (70, "start"), (None, "end")], [2.0, 3.0, 2.0, 4.0]),  # 1.9 s: two
])
def test_short_gaps_do_not_split_an_interaction(missing, expected, durations):
    stream = [frame(i, {1: (100, 100, "staff"), **({} if i in missing else {2: (120, 100, "customer")})})
              for i in range(91)]
    events = run(InteractionRule(max_distance=50, min_seconds=2.0, gap_seconds=1.0), stream)
    assert phases(events) == expected
    assert [e.duration for _, e in events] == pytest.approx(durations)


def test_flickering_detection_gives_one_event_not_a_storm():
    stream = [frame(i, {1: (100, 100, "staff"), **({2: (120, 100, "customer")} if i % 2 else {})}) for i in range(100)]
    events = run(InteractionRule(max_distance=50, min_seconds=1.0, gap_seconds=0.5), stream)
    assert Counter(e.phase for _, e in events) == {"start": 1, "end": 1}


def test_unattended_needs_more_than_the_threshold_and_ends_when_staff_arrives():
    def people(i):
        return {2: (100, 100, "customer"), **({9: (130, 100, "staff")} if i >= 80 else {9: (380, 390, "staff")})}

    rule = UnattendedRule(zones=ZONES, zone="store", seconds=5.0, staff_distance=100, gap_seconds=1.0)
    events = run(rule, [frame(i, people(i)) for i in range(120)])
    assert phases(events) == [(51, "start"), (90, "end")]  # > 5.0 s; staff from frame 80; gap 1.0 s after frame 79
    end = events[1][1]
    assert end.kind == "unattended" and end.track_ids == (2,)
    assert end.details["waiting_time"] == pytest.approx(7.9) and end.duration == pytest.approx(7.9)


def test_unattended_at_exactly_the_threshold_is_not_an_event():
    stream = [frame(i, {2: ((100 if i <= 50 else 500), 100, "customer")}) for i in range(80)]  # in store 0..5.0 s
    assert run(UnattendedRule(zones=ZONES, zone="store", seconds=5.0, gap_seconds=0.5), stream) == []
    stream = [frame(i, {2: ((100 if i <= 51 else 500), 100, "customer")}) for i in range(80)]  # 0..5.1 s
    events = run(UnattendedRule(zones=ZONES, zone="store", seconds=5.0, gap_seconds=0.5), stream)
    assert phases(events) == [(51, "start"), (57, "end")]


def test_id_switch_mid_event_ends_the_old_event_and_starts_the_new_one_once():
    stream = [frame(i, {(2 if i < 100 else 7): (100, 100, "customer")}) for i in range(200)]
    events = run(UnattendedRule(zones=ZONES, zone="store", seconds=5.0, gap_seconds=1.0), stream)
    assert phases(events) == [(51, "start"), (110, "end"), (151, "start"), (None, "end")]
    assert [e.track_ids for _, e in events] == [(2,), (2,), (7,), (7,)]
    starts = Counter(e.event_id for _, e in events if e.phase == "start")
    assert max(starts.values()) == 1 and len(starts) == 2
    assert events[3][1].duration == pytest.approx(9.9)


def test_queue_forms_grows_and_dissolves():
    def people(i):
        p = {k: (450 + 30 * k, 100, "customer") for k in (1, 2, 3)} if 10 <= i < 110 else {}
        if 40 <= i < 60:
            p[4] = (560, 300, "customer")
        p[5] = (100, 100, "customer")  # in the store, not the queue
        return p

    events = run(QueueRule(zones=ZONES, zone="queue", min_people=3, min_seconds=4.0, gap_seconds=1.0),
                 [frame(i, people(i)) for i in range(150)])
    assert phases(events) == [(50, "start"), (120, "end")]
    end = events[1][1]
    assert end.track_ids == (1, 2, 3, 4) and end.details["max_length"] == 4
    assert end.details["waits"] == {"1": pytest.approx(9.9), "2": pytest.approx(9.9), "3": pytest.approx(9.9),
                                    "4": pytest.approx(1.9)}
    assert end.started_at == pytest.approx(1.0) and end.duration == pytest.approx(9.9)


def test_untracked_detections_never_count():
    stream = [frame(i, {1: (100, 100, "staff"), 2: (120, 100, "customer")}, tracked=False) for i in range(100)]
    assert run(InteractionRule(max_distance=50, min_seconds=1.0), stream) == []


def test_untrusted_tracks_and_staff_are_not_unattended_customers():
    stream = [frame(i, {3: (100, 100, "customer"), 4: (300, 100, "staff")}, untrusted={3}) for i in range(100)]
    assert run(UnattendedRule(zones=ZONES, zone="store", seconds=1.0), stream) == []


def test_an_interaction_starts_when_it_began_even_if_staff_is_recognised_later():
    # the cashier (1) stands by the customer (2) from 0 s but is known as staff only at 5 s
    stream = [frame(i, {1: (100, 100, "staff" if i >= 50 else "customer"), 2: (120, 100, "customer")})
              for i in range(100)]
    events = run(InteractionRule(max_distance=50, min_seconds=2.0, gap_seconds=1.0), stream)
    assert phases(events) == [(50, "start"), (None, "end")]  # said at 5 s ...
    start = events[0][1]
    assert start.started_at == pytest.approx(0.0) and start.track_ids == (1, 2)  # ... from 0 s, (staff, customer)
    assert events[1][1].duration == pytest.approx(9.9)
    assert start.event_id.endswith("-1-2")


def test_an_interaction_waits_for_trust_but_keeps_its_start():
    # the customer (2) is trusted to be a person only from 3 s; the pair is close from 1 s
    stream = [frame(i, {1: (100, 100, "staff"), 2: ((120 if i >= 10 else 400), 100, "customer")},
                    untrusted={2} if i < 30 else set()) for i in range(60)]
    events = run(InteractionRule(max_distance=50, min_seconds=1.0, gap_seconds=1.0), stream)
    assert phases(events) == [(30, "start"), (None, "end")]
    assert events[0][1].started_at == pytest.approx(1.0)


def test_never_trusted_never_interacts():
    stream = [frame(i, {1: (100, 100, "staff"), 2: (120, 100, "customer")}, untrusted={2}) for i in range(100)]
    assert run(InteractionRule(max_distance=50, min_seconds=1.0), stream) == []


def test_two_customers_together_are_not_an_interaction():
    stream = [frame(i, {1: (100, 100, "customer"), 2: (120, 100, "customer")}) for i in range(100)]
    assert run(InteractionRule(max_distance=50, min_seconds=1.0), stream) == []


def test_one_customer_served_by_two_cashiers_is_one_service_naming_both():
    stream = [frame(i, {1: (100, 100, "staff"), 3: (140, 100, "staff"), 2: (120, 100, "customer")}) for i in range(40)]
    events = run(InteractionRule(max_distance=50, min_seconds=1.0), stream)
    starts = [e for _, e in events if e.phase == "start"]
    assert [e.track_ids for e in starts] == [(1, 2)]
    end = next(e for _, e in events if e.phase == "end")
    assert end.details == {"staff_ids": [1, 3], "customer_ids": [2]}


def test_a_clerk_serving_a_group_for_two_minutes_is_one_event_whoever_switches_ids():
    """A clerk (staff) serves four customers at a counter for 120 s; every 10 s one of the
    customers' tracks switches id, and the clerk's own id switches twice (ids 1 -> 50 -> 60)."""
    stream = []
    for i in range(1200):
        clerk = 1 if i < 400 else 50 if i < 800 else 60
        people = {clerk: (100, 100, "staff")}
        for k in range(4):
            generation = (i // 100 + k) // 4  # each customer's id changes now and then
            people[10 + k + 100 * generation] = (80 + 15 * k, 140, "customer")
        stream.append(frame(i, people))
    events = run(InteractionRule(max_distance=80, min_seconds=3.0, gap_seconds=2.0), stream)
    assert [e.phase for _, e in events] == ["start", "end"]
    end = events[-1][1]
    assert end.duration == pytest.approx(119.9) and end.started_at == 0.0
    assert end.details["staff_ids"] == [1, 50, 60] and len(end.details["customer_ids"]) > 4


def test_an_id_switch_of_the_customer_mid_interaction_continues_the_event():
    stream = [frame(i, {1: (100, 100, "staff"), (2 if i < 50 else 7): (120, 100, "customer")}) for i in range(100)]
    events = run(InteractionRule(max_distance=50, min_seconds=2.0), stream)
    assert [e.phase for _, e in events] == ["start", "end"] and events[0][1].track_ids == (1, 2)


def test_two_counters_far_apart_are_two_services():
    stream = [frame(i, {1: (100, 100, "staff"), 2: (120, 100, "customer"), 3: (350, 100, "staff"),
                        4: (370, 100, "customer")}) for i in range(40)]
    events = run(InteractionRule(max_distance=50, min_seconds=1.0), stream)
    assert sorted(e.track_ids for _, e in events if e.phase == "start") == [(1, 2), (3, 4)]


def test_a_customer_being_served_is_never_unattended():
    """Staff 1 stands 150 px from customer 2 (beyond the unattended rule's 100 px) yet serves them
    (interaction distance 160): the rules agree, so no unattended event while the service lasts."""
    interaction = InteractionRule(max_distance=160, min_seconds=1.0)
    unattended = UnattendedRule(zones=ZONES, seconds=2.0, staff_distance=100)
    events = []
    for i in range(100):
        f = frame(i, {1: (100, 100, "staff"), 2: (250, 100, "customer")})
        interaction.process(f)
        unattended.process(f)
        events += f.events
    assert [e.kind for e in events] == ["interaction"]


def test_a_queue_that_was_ready_goes_on_with_a_person_who_is_never_trusted():
    """Customers 1 and 2 queue from 0 s, both trusted; 1 leaves at 6 s while 3, half hidden
    behind the till (never trusted), stands there from 1 s: still a queue of two at 10 s."""
    stream = []
    for i in range(120):
        people = {2: (450, 100, "customer"), 3: (500, 100, "customer")} if i >= 10 else {2: (450, 100, "customer")}
        if i < 60:
            people[1] = (420, 100, "customer")
        stream.append(frame(i, people, untrusted={3}))
    events = run(QueueRule(ZONES, min_people=2, min_seconds=10.0), stream)
    assert [e.phase for _, e in events] == ["start", "end"] and events[0][1].started_at == 0.0


def test_untrusted_people_do_not_make_a_queue():
    people = {k: (450 + 30 * k, 100, "customer") for k in (1, 2, 3)}
    stream = [frame(i, people, untrusted={3}) for i in range(100)]
    assert run(QueueRule(zones=ZONES, zone="queue", min_people=3, min_seconds=1.0), stream) == []


def test_a_new_video_ends_open_events_with_their_own_times():
    stream = [frame(i, {2: (100, 100, "customer")}, video="a") for i in range(30)]
    stream += [frame(i, {2: (100, 100, "customer")}, video="b") for i in range(30)]
    events = run(UnattendedRule(zones=ZONES, zone="store", seconds=1.0, gap_seconds=1.0), stream)
    assert [(e.camera, e.phase) for _, e in events] == [("a", "start"), ("a", "end"), ("b", "start"), ("b", "end")]
    assert events[1][1].duration == pytest.approx(2.9)


def test_periodic_updates_while_active():
    stream = [frame(i, {2: (100, 100, "customer")}) for i in range(60)]
    events = run(UnattendedRule(zones=ZONES, zone="store", seconds=1.0, update_seconds=2.0), stream)
    assert phases(events) == [(11, "start"), (31, "update"), (51, "update"), (None, "end")]


def test_same_events_on_the_video_clock_and_on_a_wall_clock():
    def people(i):
        return {1: (100, 100, "staff"), 2: ((120 if 10 <= i <= 60 else 350), 100, "customer")}

    file_events = run(InteractionRule(max_distance=50, min_seconds=2.0), [frame(i, people(i)) for i in range(100)])
    live_events = run(InteractionRule(max_distance=50, min_seconds=2.0),
                      [frame(i, people(i), clock0=1_764_000_000.0) for i in range(100)])
    assert [(i, e.phase, round(e.duration, 6)) for i, e in file_events] == \
        [(i, e.phase, round(e.duration, 6)) for i, e in live_events]


def test_floor_calibration_measures_in_metres():
    # 100 px = 1 m on this floor
    cal = {"image": [[0, 0], [600, 0], [600, 400], [0, 400]], "floor": [[0, 0], [6, 0], [6, 4], [0, 4]]}
    stream = [frame(i, {1: (100, 100, "staff"), 2: (250, 100, "customer")}) for i in range(40)]
    assert run(InteractionRule(max_distance=1.0, min_seconds=1.0, calibration=cal), stream) == []
    events = run(InteractionRule(max_distance=2.0, min_seconds=1.0, calibration=cal), stream)
    assert phases(events) == [(10, "start"), (None, "end")]


@pytest.mark.parametrize(("make", "words"), [
    (lambda: UnattendedRule(zones=ZONES, zone="nowhere"), "zone 'nowhere' is not defined"),
    (lambda: QueueRule(zones={"queue": [[0, 0], [1, 1]]}), "zone 'queue': need at least 3"),
    (lambda: InteractionRule(calibration={"image": [[0, 0]], "floor": [[0, 0]]}), "four"),
    (lambda: QueueRule(zones=ZONES, min_people=0), "min_people"),
])
def test_bad_rule_config_is_a_clear_error(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


def test_zone_outside_the_frame_is_a_config_error():
    rule = UnattendedRule(zones={"store": [[0, 0], [900, 0], [900, 400]]}, zone="store")
    with pytest.raises(ConfigError, match="zone 'store'.*outside the 600x400 frame"):
        rule.process(frame(0, {2: (100, 100, "customer")}))


def test_each_queue_zone_is_its_own_queue():
    zones = {**ZONES, "lane_2": [[0, 0], [100, 0], [100, 100], [0, 100]]}
    people = {1: (450, 100, "customer"), 2: (480, 100, "customer"), 3: (50, 50, "customer")}
    events = run(QueueRule(zones=zones, zone=["queue", "lane_2"], min_people=2, min_seconds=1.0),
                 [frame(i, people) for i in range(30)])
    assert [(e.phase, e.track_ids) for _, e in events] == [("start", (1, 2)), ("end", (1, 2))]
    assert events[0][1].event_id.startswith("queue-") and events[0][1].event_id.endswith("-queue")


def test_a_queue_is_dated_from_when_the_people_arrived_not_from_when_they_were_trusted():
    people = {k: (450 + 30 * k, 100, "customer") for k in (1, 2, 3)}
    stream = [frame(i, people, untrusted={3} if i < 40 else set()) for i in range(80)]
    events = run(QueueRule(zones=ZONES, zone="queue", min_people=3, min_seconds=2.0), stream)
    assert phases(events) == [(40, "start"), (None, "end")]
    assert events[0][1].started_at == pytest.approx(0.0)


def test_interaction_pairs_tie_each_till_to_its_own_lane():
    # lane 2's cashier (3) stands right behind lane 1's customer (2); lane 1's cashier (1) is further away
    zones = {"till_1": [[0, 0], [100, 0], [100, 100], [0, 100]], "lane_1": [[100, 0], [300, 0], [300, 100], [100, 100]],
             "till_2": [[100, 100], [300, 100], [300, 200], [100, 200]]}
    people = {1: (60, 50, "staff"), 2: (150, 95, "customer"), 3: (150, 105, "staff")}
    rule = InteractionRule(max_distance=120, min_seconds=1.0, zones=zones, pairs={"till_1": "lane_1"})
    events = run(rule, [frame(i, people) for i in range(30)])
    assert {e.track_ids for _, e in events} == {(1, 2)}
    everywhere = run(InteractionRule(max_distance=120, min_seconds=1.0), [frame(i, people) for i in range(30)])
    ends = [e for _, e in everywhere if e.phase == "end"]  # without pairs lane 2's cashier joins the service
    assert len(ends) == 1 and ends[0].details["staff_ids"] == [1, 3]


def test_pairs_must_name_zones():
    with pytest.raises(ConfigError, match="interaction.pairs: zone 'lane_9' is not defined"):
        InteractionRule(zones=ZONES, pairs={"store": "lane_9"})


def test_zones_drawn_on_smaller_frames_are_scaled_and_a_new_size_is_rechecked():
    # the queue zone was drawn on 300x200 frames; these frames are 600x400: everything doubles
    half = {"queue": [[200, 0], [300, 0], [300, 200], [200, 200]]}
    rule = QueueRule(zones=half, zone="queue", min_people=2, min_seconds=0.5, frame_size=[300, 200])
    people = {1: (450, 100, "customer"), 2: (500, 100, "customer")}  # inside the scaled zone only
    assert phases(run(rule, [frame(i, people) for i in range(20)])) == [(5, "start"), (None, "end")]
    wide = Frame(video="cam", index=20, timestamp=2.0, image=np.zeros((400, 900, 3), np.uint8),
                 detections=frame(0, people).detections)
    with pytest.raises(ConfigError, match="300x200"):  # same camera back at another aspect ratio: refused
        rule.process(wide)


def test_a_graph_without_a_tracker_runs_its_rules_and_preview_on_untracked_boxes(compose_cfg, tmp_path):
    """``graph.track=null``: boxes without track ids are nobody to the rules, and the preview draws them plainly."""
    from vizoflow.graph import build_nodes
    from vizoflow.pipeline import site_services

    cfg = compose_cfg("+site=demo", "graph.track=null", "graph.detect=null", f"evidence.dir={tmp_path}/segments")
    with site_services(cfg) as services:
        run_untracked(build_nodes(cfg.graph, services=services))
    assert (tmp_path / "preview.mp4").stat().st_size > 0


def run_untracked(nodes) -> None:
    """Three frames with two untracked boxes through ``nodes``: no events."""
    import numpy as np
    import supervision as sv

    from vizoflow.frame import Frame

    boxes = sv.Detections(xyxy=np.array([[10, 10, 40, 90], [200, 120, 230, 170]], dtype=float),
                          confidence=np.array([0.9, 0.8]), class_id=np.array([0, 0]))
    try:
        for i in range(3):
            frame = Frame(video="v", index=i, timestamp=i / 10, image=np.zeros((240, 320, 3), np.uint8),
                          detections=boxes, epoch=1.7e9)
            for _, node in nodes:
                frame = node.process(frame)
            assert frame.events == []
    finally:
        for _, node in nodes:
            getattr(node, "close", lambda: None)()


def test_a_service_does_not_go_on_into_the_next_video():
    """Person ids restart with each video: the same ids in the next video are a new service, dated
    from when they met in that video (1.0 s), not from the earlier video's clock."""
    rule = InteractionRule(max_distance=50, min_seconds=1.0)
    stream = [frame(i, {1: (100, 100, "staff"), 2: (120, 100, "customer")}, video="a") for i in range(30)]
    stream += [frame(i, {1: (100, 100, "staff"), 2: (120 if i >= 10 else 300, 100, "customer")}, video="b")
               for i in range(30)]
    events = run(rule, stream)
    assert [e.started_at for _, e in events if e.phase == "start"] == [0.0, 1.0]
