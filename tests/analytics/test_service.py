"""Waiting and service times from visits and interaction events, with known answers."""

from __future__ import annotations

from vizoflow.analytics.service import ServiceMeter
from vizoflow.analytics.visits import Visit
from vizoflow.events import Event


def interaction(phase, start, duration, staff=1, customer=5, eid="i-1"):
    return Event("interaction", phase, eid, "cam", (staff, customer), ((0, 0, 1, 1),) * 2, 0.9, start, duration)


def test_wait_is_from_entering_to_the_interaction_and_service_its_duration():
    m = ServiceMeter(["queue"], settle_seconds=5.0)
    m.on_event(interaction("start", 12.0, 0.0))
    m.on_visit(Visit("queue", 5, "customer", 4.0, 30.0))
    assert m.update(31.0) == []  # settling; the interaction also goes on
    m.on_event(interaction("end", 12.0, 15.0))
    [row] = m.update(36.0)
    assert (row.served, row.wait, row.service, row.staff_id, row.event_id) == (True, 8.0, 15.0, 1, "i-1")


def test_a_customer_who_leaves_without_an_interaction_is_left_unserved_once_settled():
    m = ServiceMeter(["queue"], settle_seconds=5.0)
    m.on_visit(Visit("queue", 6, "customer", 0.0, 20.0))
    m.on_event(interaction("start", 2.0, 0.0, customer=5))  # someone else's
    assert m.update(24.0) == []
    [row] = m.update(25.0)
    assert (row.served, row.wait, row.service) == (False, None, None)


def test_an_interaction_announced_after_the_visit_ended_still_counts():
    m = ServiceMeter(["queue"], settle_seconds=10.0)
    m.on_visit(Visit("queue", 5, "customer", 0.0, 6.0))
    m.on_event(interaction("start", 1.0, 0.0))  # dated 1.0 s, announced at 8 s
    m.on_event(interaction("end", 1.0, 4.0))
    [row] = m.update(16.0)
    assert (row.served, row.wait, row.service) == (True, 1.0, 4.0)


def test_staff_visits_and_other_zones_are_not_service_visits():
    m = ServiceMeter(["queue"], settle_seconds=0.0)
    m.on_visit(Visit("queue", 1, "staff", 0.0, 5.0))
    m.on_visit(Visit("floor", 5, "customer", 0.0, 5.0))
    assert m.update(100.0) == [] and m.flush() == []


def test_a_long_visit_keeps_its_interaction_however_long_the_customer_stays():
    m = ServiceMeter(["counter"], settle_seconds=5.0, forget_seconds=120.0)
    m.on_event(interaction("start", 10.0, 0.0))
    m.on_event(interaction("end", 10.0, 50.0))
    for t in range(0, 700, 10):  # the customer stays for 700 s, seen all along
        assert m.update(float(t), seen=[5]) == []
    m.on_visit(Visit("counter", 5, "customer", 0.0, 700.0))
    [row] = m.update(706.0, seen=[])
    assert (row.served, row.wait, row.service) == (True, 10.0, 50.0)


def test_stepping_out_and_back_during_one_service_makes_one_served_row():
    m = ServiceMeter(["queue"], settle_seconds=0.0)
    m.on_event(interaction("start", 30.0, 0.0))
    m.on_event(interaction("end", 30.0, 60.0))
    m.on_visit(Visit("queue", 5, "customer", 0.0, 50.0))
    m.on_visit(Visit("queue", 5, "customer", 53.0, 95.0))
    rows = m.update(100.0)
    assert [(r.served, r.wait, r.service) for r in rows] == [(True, 30.0, 60.0)]


def test_a_visit_matches_interactions_under_the_ids_the_customer_had_before_a_switch():
    m = ServiceMeter(["queue"], settle_seconds=0.0)
    m.on_event(interaction("start", 4.0, 0.0, customer=5))
    m.on_event(interaction("end", 4.0, 6.0, customer=5))
    m.on_visit(Visit("queue", 9, "customer", 0.0, 20.0, aliases=(5,)))  # the tracker renamed 5 to 9 at 12 s
    [row] = m.update(21.0)
    assert (row.customer_id, row.served, row.wait) == (9, True, 4.0)


def test_interactions_under_an_earlier_id_are_kept_while_the_re_identified_customer_stays():
    m = ServiceMeter(["counter"], settle_seconds=5.0, forget_seconds=120.0)
    m.on_event(interaction("start", 10.0, 0.0, customer=5))
    m.on_event(interaction("end", 10.0, 30.0, customer=5))
    for t in range(0, 300, 10):  # renamed 9 at 50 s; the store node passes the earlier id along while 9 stays
        m.update(float(t), seen=[5] if t < 50 else [9, 5])
    m.on_visit(Visit("counter", 9, "customer", 0.0, 300.0, aliases=(5,)))
    [row] = m.update(306.0)
    assert (row.served, row.wait, row.service) == (True, 10.0, 30.0)
