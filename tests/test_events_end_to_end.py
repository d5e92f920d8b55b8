"""Events from real footage, checked against what a person sees in the clips."""

from __future__ import annotations

import json

import av
import numpy as np
import polars as pl
import pytest

from tests.conftest import FOOTAGE, run_cli
from tests.nodes.test_metrics import SEED_SCHEMA

# intel-one-by-one, watched frame by frame around each visit (contact sheets every 2.5 s
# over the whole clip, then every 0.5 s for 2 s either side of each arrival and departure):
# six people, one at a time, stand at the table. Seconds on the video clock when the
# person's feet reach the table zone and when they turn away from it.
INTEL_VISITS = [(7.4, 19.0), (24.3, 44.0), (52.1, 69.0), (76.3, 85.9), (94.0, 118.9), (125.5, 135.1)]


@pytest.fixture(scope="module")
def intel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("intel")
    result = run_cli("+site=intel_table", f"output_dir={out}", f"evidence.dir={out}/segments", "runtime.progress=false",
                     "graph.preview=null")
    assert result.returncode == 0, result.stderr
    return out


def test_each_visit_to_the_intel_table_is_one_unattended_event(intel_run):
    data = json.loads((intel_run / "analytics_metrics.json").read_text())
    import jsonschema

    jsonschema.validate(data, SEED_SCHEMA)
    events = data["unattended_metrics"]["unattended_events"]
    assert len(events) == len(INTEL_VISITS)
    table = pl.read_parquet(intel_run / "events.parquet").filter(pl.col("phase") == "end").sort("started_at")
    for (arrive, leave), row in zip(INTEL_VISITS, table.iter_rows(named=True), strict=True):
        assert row["started_at"] == pytest.approx(arrive, abs=1.5)
        assert row["started_at"] + row["duration"] == pytest.approx(leave, abs=1.5)
        assert row["waiting_time"] == pytest.approx(row["duration"])
    day = next(iter(data["daily_summary"].values()))
    assert day["unattended"] == 6 and 10 < day["mean_unattended_wait"] < 20


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
    assert status.returncode == 0 and "linked 6" in status.stdout


def test_interaction_log_has_one_start_and_one_end_per_event(intel_run):
    lines = [json.loads(x) for x in (intel_run / "interactions.jsonl").read_text().splitlines()]
    by_id: dict[str, list[str]] = {}
    for line in lines:
        by_id.setdefault(line["event_id"], []).append(line["phase"])
        assert line["start"].endswith("+00:00") and line["end"].endswith("+00:00")
    assert len(by_id) == 6 and all(p == ["start", "end"] for p in by_id.values())


def test_demo_clip_events(tmp_path):
    result = run_cli("+site=demo", f"output_dir={tmp_path}", f"evidence.dir={tmp_path}/segments",
                     "runtime.progress=false", "graph.preview=null")
    assert result.returncode == 0, result.stderr
    tracks = pl.read_parquet(tmp_path / "tracks.parquet").with_columns(gx=(pl.col("x1") + pl.col("x2")) / 2)
    events = pl.read_parquet(tmp_path / "events.parquet").filter(pl.col("phase") == "end")
    # The shopper who walks out of the shop (gt id 1) crosses the shop zone's front edge
    # (y = 140) at about frame 145 (5.8 s): an unattended wait in the shop ends then.
    gt = np.loadtxt(FOOTAGE / "caviar-shop-front" / "gt.txt", delimiter=",")
    leaver = gt[gt[:, 1] == 1]
    leaves_at = (leaver[np.argmax(leaver[:, 3] + leaver[:, 5] > 140), 0] - 1) / 25
    ends = (events["started_at"] + events["duration"]).to_list()
    assert any(abs(end - leaves_at) <= 0.5 for end in ends), (ends, leaves_at)
    # The mannequin in the shop is tracked all clip long but never moves: never an event.
    static = [tid for tid, g in tracks.group_by("track_id")
              if g["timestamp"].max() - g["timestamp"].min() > 10 and g["gx"].max() - g["gx"].min() < 3]
    assert static and not set(static) & {i for ids in events["track_ids"].to_list() for i in ids}
    assert json.loads((tmp_path / "analytics_metrics.json").read_text())["metadata"]["version"] == "1.1"


def test_snapshot_draws_the_zones_and_rejects_zones_outside_the_frame(tmp_path):
    result = run_cli("+site=demo", "mode=snapshot", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "snapshot.png").stat().st_size > 10_000
    result = run_cli("+site=demo", "mode=snapshot", f"output_dir={tmp_path}", "zones.shop=[[0,0],[500,0],[500,100]]")
    assert result.returncode == 2
    assert "zone 'shop'" in result.stderr and "outside the 384x288 frame" in result.stderr
