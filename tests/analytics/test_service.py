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
