import json
from pathlib import Path

from vizoflow.evidence.outbox import LOCAL, Outbox
from vizoflow.review.alerts import AlertBook, OutboxReader, delivery_of, read_events


def event(event_id: str, phase: str, kind: str = "interaction", start: str = "2026-12-05T10:00:00.000+05:30",
          **extra) -> dict:
    row = {"event_id": event_id, "kind": kind, "phase": phase, "camera": "video", "track_ids": [1, 2],
           "start": start, "end": "2026-12-05T10:00:12.000+05:30", "duration": 12.04,
           "details": {"staff_ids": [1], "customer_ids": [2, 7]}}
    return {**row, **extra}


def write_log(path: Path, rows: list[dict], torn: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + torn)
    return path


def test_the_last_phase_of_each_event_wins_and_a_torn_line_is_skipped(tmp_path: Path):
    log = write_log(tmp_path / "interactions.jsonl",
                    [event("a", "start"), event("b", "start", kind="queue"), event("a", "end")], torn='{"event_id": "c", "ph')
    events = read_events(log)
    assert {k: v["phase"] for k, v in events.items()} == {"a": "end", "b": "start"}


def test_a_missing_log_has_no_events(tmp_path: Path):
    assert read_events(tmp_path / "interactions.jsonl") == {}


def test_delivery_is_the_least_advanced_part_and_a_failure_names_its_reason():
    part = {"incident_id": "incident_1", "last_error": None, "uploaded_to": "https://obs.example/upload"}
    assert delivery_of([]).state == "none"
    assert delivery_of([{**part, "state": "linked"}, {**part, "state": "uploaded"}]).state == "uploaded"
    assert delivery_of([{**part, "state": "reported"}]).state == "reported"
    assert delivery_of([{**part, "state": "linked", "uploaded_to": LOCAL}]).state == "local"
    failed = delivery_of([{**part, "state": "reported"}, {**part, "state": "failed", "last_error": "HTTP 413"}])
    assert (failed.state, failed.reason) == ("failed", "HTTP 413")


def test_alerts_join_events_with_their_clips_newest_first(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    write_log(run / "interactions.jsonl", [
        event("early", "end", start="2026-12-05T09:00:00.000+05:30"),
        event("late", "start", kind="queue", start="2026-12-05T11:00:00.000+05:30", track_ids=[4, 5]),
    ])
    outbox = Outbox(tmp_path / "segments" / "outbox.sqlite")
    row = outbox.add("early", 1, "interaction", "segments/site/segment_000001_early.mp4", {})
    outbox.add("early", 2, "interaction", "segments/site/segment_000002_early.mp4", {})
    outbox.fail(row, "upload refused: HTTP 401")
    outbox.close()
    alerts = AlertBook(run, OutboxReader(tmp_path / "segments" / "outbox.sqlite"), camera="till").alerts()
    late, early = alerts
    assert (late.event_id, late.open, late.customer_ids, late.clips, late.delivery.state) == ("late", True, [4, 5], [], "none")
    assert (early.open, early.staff_ids, early.customer_ids, early.camera) == (False, [1], [2, 7], "till")
    assert early.clips == ["segment_000001_early.mp4", "segment_000002_early.mp4"]
    assert (early.delivery.state, early.delivery.reason) == ("failed", "upload refused: HTTP 401")
    shown = early.to_json()
    assert shown["clip_url"] == "/clips/segment_000001_early.mp4" and len(shown["clip_urls"]) == 2
    assert shown["duration"] == 12.0 and early.day == "2026-12-05"


def test_an_unreadable_outbox_shows_events_without_clips(tmp_path: Path):
    (tmp_path / "outbox.sqlite").write_text("not a database")
    assert OutboxReader(tmp_path / "outbox.sqlite").rows() == {}


def test_a_batch_shows_the_events_of_each_video(tmp_path: Path):
    batch = tmp_path / "batch"
    for video, start in [("monday", "2026-12-01T10:00:00+00:00"), ("tuesday", "2026-12-02T10:00:00+00:00")]:
        (batch / video).mkdir(parents=True)
        write_log(batch / video / "interactions.jsonl", [event(f"{video}-1", "end", start=start)])
    (batch / "batch.json").write_text("[]")
    alerts = AlertBook(batch, OutboxReader(tmp_path / "none.sqlite")).alerts()
    assert [a.event_id for a in alerts] == ["tuesday-1", "monday-1"]


def test_a_damaged_event_line_hides_only_itself(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    good = event("good", "end")
    lines = [json.dumps(r) for r in [good, [1, 2], "text", {"event_id": "no-start", "kind": "queue", "phase": "end"},
                                      event("bad-details", "end", details=[1]), event("bad-duration", "end", duration="x"),
                                      event("bad-time", "end", start="yesterday"),
                                      event("bad-ids", "end", details={"staff_ids": "me"})]]
    lines.append('{"event_id": "nan", "kind": "queue", "phase": "end", "start": "2026-12-05T10:00:00+00:00", '
                 '"duration": NaN}')
    (run / "interactions.jsonl").write_text("\n".join(lines) + "\n")
    alerts = AlertBook(run, OutboxReader(tmp_path / "none.sqlite")).alerts()
    assert [a.event_id for a in alerts] == ["good"]
