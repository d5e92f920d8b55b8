"""Events from real footage, checked against what a person sees in the clips."""

from __future__ import annotations

import json
import socket
import subprocess

import av
import numpy as np
import polars as pl
import pytest
import supervision as sv
import yaml
from werkzeug import Response

from tests.conftest import FOOTAGE, ROOT, run_cli
from tests.nodes.test_analytics import V11_SCHEMA
from vizoflow.cli import CONF_DIR
from vizoflow.evaluate import detected_events, load_labels, score_events
from vizoflow.mot import person_tracks
from vizoflow.zones import Zones

# intel-one-by-one, watched frame by frame around each visit (contact sheets every 2.5 s
# over the whole clip, then every 0.5 s for 2 s either side of each arrival and departure):
# six people, one at a time, stand at the table. Seconds on the video clock when the
# person's feet reach the table zone and when they turn away from it.
INTEL_VISITS = [(7.4, 19.0), (24.3, 44.0), (52.1, 69.0), (76.3, 85.9), (94.0, 118.9), (125.5, 135.1)]
LABELS = ROOT / "data" / "labels" / "shared.csv"
INTEL_THRESHOLD = 10.0  # the intel_table site's rules.unattended.seconds
INTEL_EVENTS = [(a, b) for a, b in INTEL_VISITS if b - a > INTEL_THRESHOLD]  # four visits are longer


@pytest.fixture(scope="module")
def intel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("intel")
    result = run_cli("+site=intel_table", f"output_dir={out}", f"evidence.dir={out}/segments", "runtime.progress=false",
                     "graph.preview=null")
    assert result.returncode == 0, result.stderr
    return out


def test_each_visit_longer_than_the_threshold_is_one_unattended_event(intel_run):
    data = json.loads((intel_run / "analytics_metrics.json").read_text())
    import jsonschema

    jsonschema.validate(data, V11_SCHEMA)
    events = data["unattended_metrics"]["unattended_events"]
    assert len(INTEL_EVENTS) == 4 and len(events) == len(INTEL_EVENTS)
    table = pl.read_parquet(intel_run / "events.parquet").filter(pl.col("phase") == "end").sort("started_at")
    for (arrive, leave), row in zip(INTEL_EVENTS, table.iter_rows(named=True), strict=True):
        assert row["started_at"] == pytest.approx(arrive, abs=1.5)
        assert row["started_at"] + row["duration"] == pytest.approx(leave, abs=1.5)
    day = next(iter(data["daily_summary"].values()))
    assert day["unattended"] == 4 and 15 < day["mean_unattended_wait"] < 21  # visits of 11.6, 19.7, 16.9, 24.9 s


def test_every_event_gets_a_playable_clip_linked_offline(intel_run):
    data = json.loads((intel_run / "analytics_metrics.json").read_text())
    ends = pl.read_parquet(intel_run / "events.parquet").filter(pl.col("phase") == "end")
    started = dict(zip(ends["event_id"], ends["started_at"]))
    for entry in data["unattended_metrics"]["unattended_events"]:
        start = started[entry["event_id"]]
        evidence = entry["video_evidence"]
        clip = intel_run / "segments" / evidence["segment_filename"]
        assert evidence["video_url"] == clip.resolve().as_uri()
        assert evidence["incident_id"].startswith("incident_")
        with av.open(str(clip)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            seconds = container.duration / 1e6
        # pre-roll (10 s, or back to the start of the video) + the wait + 5 s post-roll (or to the end)
        asked = min(start + entry["waiting_time"] + 5.0, 139.3) - max(start - 10.0, 0.0)
        assert seconds == pytest.approx(asked, abs=0.25), (entry, start)
    incidents = [json.loads(x) for x in (intel_run / "segments" / "incidents.jsonl").read_text().splitlines()]
    assert sorted(i["incident_id"] for i in incidents) == sorted(
        e["video_evidence"]["incident_id"] for e in data["unattended_metrics"]["unattended_events"])
    status = run_cli("+site=intel_table", "mode=outbox", f"evidence.dir={intel_run}/segments")
    assert status.returncode == 0 and "linked 4" in status.stdout


def test_interaction_log_has_one_start_and_one_end_per_event(intel_run):
    lines = [json.loads(x) for x in (intel_run / "interactions.jsonl").read_text().splitlines()]
    by_id: dict[str, list[str]] = {}
    for line in lines:
        by_id.setdefault(line["event_id"], []).append(line["phase"])
        assert line["start"].endswith("+00:00") and line["end"].endswith("+00:00")
    assert len(by_id) == 4 and all(p == ["start", "end"] for p in by_id.values())


@pytest.mark.slow
def test_caviar_alerts_on_the_shopper_never_on_racks_or_the_mannequin(caviar_batch):
    # the caviar site at unattended 2 s (a test setting), so the shopper's 6 s in the shop is an event
    root, _, _ = caviar_batch
    tmp_path = root / "first" / "caviar-shop-front"
    tracks = pl.read_parquet(tmp_path / "tracks.parquet").with_columns(  # events name persons, not tracklets
        gx=(pl.col("x1") + pl.col("x2")) / 2, track_id=pl.col("person_id"))
    events = pl.read_parquet(tmp_path / "events.parquet").filter(pl.col("phase") == "end")
    # The shopper who walks out of the shop (gt id 1) crosses the shop zone's front edge
    # (y = 140) at about frame 145 (5.8 s): an unattended wait in the shop ends then.
    gt = np.loadtxt(FOOTAGE / "caviar-shop-front" / "gt.txt", delimiter=",")
    leaver = gt[gt[:, 1] == 1]
    leaves_at = (leaver[np.argmax(leaver[:, 3] + leaver[:, 5] > 140), 0] - 1) / 25
    ends = (events["started_at"] + events["duration"]).to_list()
    assert any(abs(end - leaves_at) <= 0.5 for end in ends), (ends, leaves_at)
    # The clothes rack left in the shop is tracked all clip long but never moves: never an event.
    static = [tid for (tid,), g in tracks.group_by("track_id")
              if g["timestamp"].max() - g["timestamp"].min() > 10 and g["gx"].max() - g["gx"].min() < 3]
    assert static and not set(static) & {i for ids in events["track_ids"].to_list() for i in ids}
    # Every event follows a ground-truth person (racks and the mannequin are in no gt box).
    people = person_tracks(tracks, FOOTAGE / "caviar-shop-front" / "gt.txt")
    assert events.height >= 1 and all(set(ids) & people for ids in events["track_ids"].to_list())
    assert json.loads((tmp_path / "analytics_metrics.json").read_text())["metadata"]["version"] == "1.1"


@pytest.mark.slow
def test_snapshot_draws_the_zones_and_rejects_zones_outside_the_frame(tmp_path):
    result = run_cli("+site=caviar", "mode=snapshot", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "snapshot.png").stat().st_size > 10_000
    result = run_cli("+site=caviar", "mode=snapshot", f"output_dir={tmp_path}", "zones.shop=[[0,0],[500,0],[500,100]]")
    assert result.returncode == 2
    assert "zone 'shop'" in result.stderr and "outside the 384x288 frame" in result.stderr


def test_every_demo_event_is_true_and_every_label_is_found(demo_run):
    """The demo (ucf-checkout) against the watched labels in data/labels/shared.csv."""
    labels = load_labels(LABELS).filter(pl.col("video") == "ucf-checkout").with_columns(video=pl.lit("video"))
    events = pl.read_parquet(demo_run / "events.parquet").with_columns(video=pl.lit("video"))  # one video: no column
    table = score_events(labels, detected_events(events), kinds=("interaction", "queue", "unattended"))
    got = {r["kind"]: (r["labels"], r["detected"], r["tp"]) for r in table.iter_rows(named=True)}
    assert got == {"interaction": (1, 1, 1), "queue": (2, 2, 2), "unattended": (0, 0, 0)}, got


def test_demo_service_begins_when_the_cashier_began_serving_and_names_the_customers_served(demo_run):
    """The cashier is known as staff only after 2 s behind the till; the service still starts at the clip's
    start, and it lists the customers at lane 1: the bald man and the young man at least (the labels)."""
    zones = Zones(yaml.safe_load((CONF_DIR / "site" / "demo.yaml").read_text())["zones"])
    ends = pl.read_parquet(demo_run / "events.parquet").filter((pl.col("phase") == "end") & (pl.col("kind") == "interaction"))
    assert ends.height == 1
    day = json.loads((demo_run / "analytics_metrics.json").read_text())
    [entry] = day["interaction_metrics"]["interaction_times"]
    assert entry["staff_ids"] == [entry["staff_id"]] and entry["customer_id"] in entry["customer_ids"]
    assert len(entry["customer_ids"]) >= 2
    for row in ends.iter_rows(named=True):
        assert row["started_at"] < 1.0, row
        staff_box, customer_box = json.loads(row["boxes"])
        det = sv.Detections(xyxy=np.array([staff_box, customer_box], dtype=float))
        assert zones.contains("cashier_1", det).tolist() == [True, False]
        assert zones.contains("lane_1", det).tolist() == [False, True]


def outbox_cli(segments, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("+site=intel_table", "mode=outbox", f"evidence.dir={segments}", *args, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unreachable", "rejected"])
def test_outbox_retry_delivers_what_failed_once_the_api_answers(tmp_path, httpserver, monkeypatch, fault):
    """A clip whose delivery failed (API unreachable, or a 4xx that parks it as failed) is delivered
    by ``mode=outbox +retry=true`` once the API answers: uploaded, reported and linked, each once."""
    from tests.test_rerun_evidence import ALERTS, KEY, TEMPLATE, UPLOAD, Site, evidence_in, requests_to, url
    from vizoflow.evidence.outbox import CLIP_WRITTEN, FAILED, LINKED

    monkeypatch.setenv("VIZO_API_KEY", KEY)
    site = Site(tmp_path)
    if fault == "unreachable":
        with socket.socket() as closed:  # bound, never listening: connection refused
            closed.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
            first = site.run(dead + UPLOAD, dead + ALERTS)
        expected_state = CLIP_WRITTEN  # waiting for its next attempt
    else:
        httpserver.expect_oneshot_request(UPLOAD, method="POST").respond_with_json({"error": "bad key"}, status=403)
        first = site.run(url(httpserver, UPLOAD), url(httpserver, ALERTS))
        expected_state = FAILED
    [item] = site.items()
    assert item.state == expected_state and item.last_error, item
    assert evidence_in(first["metrics"]) == [None]

    status = outbox_cli(site.segments)  # without +retry: says what is waiting, sends nothing
    assert status.returncode == 0, status.stderr
    assert f"{expected_state} 1" in status.stdout and "linked 0" in status.stdout and item.event_id in status.stdout
    sent_before = len(httpserver.log)

    def upload(request):
        assert request.headers["X-API-Key"] == KEY and "file" in request.files
        return Response(json.dumps({"filename": "stored_1.mp4"}), content_type="application/json")

    httpserver.expect_request(UPLOAD, method="POST").respond_with_handler(upload)
    httpserver.expect_request(ALERTS, method="POST").respond_with_json({"ok": True})
    endpoints = (f"evidence.upload_url={url(httpserver, UPLOAD)}", f"evidence.incident_url={url(httpserver, ALERTS)}")
    retried = outbox_cli(site.segments, "+retry=true", *endpoints)
    assert retried.returncode == 0, retried.stderr
    assert "linked 1" in retried.stdout and f"{FAILED} 0" in retried.stdout, retried.stdout
    uploads, reports = requests_to(httpserver, UPLOAD)[sent_before > 0:], requests_to(httpserver, ALERTS)
    assert len(uploads) == 1 and len(reports) == 1
    report = json.loads(reports[0].get_data())
    assert report["video_evidence"]["video_url"] == TEMPLATE.format(filename="stored_1.mp4")
    assert evidence_in(first["metrics"]) == [report["video_evidence"]]  # linked into the run's metrics file
    [item] = site.items()
    assert item.state == LINKED

    again = outbox_cli(site.segments, "+retry=true", *endpoints)  # nothing left: nothing sent twice
    assert again.returncode == 0 and "linked 1" in again.stdout
    assert len(requests_to(httpserver, UPLOAD)) == 1 + (sent_before > 0) and len(requests_to(httpserver, ALERTS)) == 1
