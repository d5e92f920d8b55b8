"""Re-running footage: earlier clips are adopted, every run's file gets evidence, no incident twice.

Each "run" here is what the pipeline does for one event: the segmenter on synthetic
frames, the metrics entry written at the event's end, a courier for the run's endpoints
(local, or a real HTTP server on 127.0.0.1) and the linker. The end-to-end version on
real footage is at the bottom.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from tests.conftest import run_cli
from tests.evidence.test_clips import event, frames, run, segmenter
from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.evidence.courier import build_courier
from vizoflow.evidence.linker import EvidenceLinker
from vizoflow.evidence.outbox import FAILED, LINK_DONE, LINKED, LOCAL, REPORTED, UNKNOWN_REMOTE, UPLOADED, Outbox
from vizoflow.evidence.retention import Retention

KEY = "rerun-KEY-7311"
TEMPLATE = "https://s3-noi.aces3.ai/vizo361/{filename}"
EID = "unattended-x-2"
UPLOAD, ALERTS = "/uploadFile", "/api/Addprolificai_alerts"


class Site:
    """One evidence folder re-run several times, each run into its own output folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.segments = root / "segments"
        self.outbox_path = self.segments / "outbox.sqlite"
        self.runs = 0

    def run(self, upload_url: str | None = None, incident_url: str | None = None, post_roll: float = 0.5,
            max_seconds: float = 120.0, duration: float = 2.0, n_frames: int = 60, output: Path | None = None,
            mode: str = "event", min_free_mb: float = 0.0) -> dict:
        """Segment, record the ended event, deliver, link: one run of the footage."""
        self.runs += 1
        out = output or self.root / f"run{self.runs}"
        metrics_path = out / "analytics_metrics.json"
        seg = segmenter(self.segments, metrics_path=str(metrics_path), mode=mode, pre_roll=0.5, post_roll=post_roll,
                        max_seconds=max_seconds, min_free_mb=min_free_mb)
        collector = AnalyticsFile(metrics_path)
        end = event("end", 1.0, duration)
        collector.add_event(end)  # the sink writes the entry when the event ends
        run(seg, frames(n_frames), {10: [event("start", 1.0, 0.0)], int(10 * (1.0 + duration)): [end]})
        outbox = Outbox(self.outbox_path)
        courier = build_courier(outbox, "store42", "entrance", upload_url, incident_url, TEMPLATE, self.segments,
                                attempts=1, backoff=0.01)
        courier.drain()
        linker = EvidenceLinker(outbox, collector)
        linker.link()
        linker.warn_unlinked()
        outbox.close()
        return {"seg": seg, "metrics": metrics_path}

    def clips(self) -> list[str]:
        return sorted(p.name for p in self.segments.glob("*.mp4"))

    def items(self):
        outbox = Outbox(self.outbox_path)
        try:
            return outbox.all()
        finally:
            outbox.close()

    def local_incidents(self) -> list[dict]:
        path = self.segments / "incidents.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def evidence_in(metrics_path: Path) -> list[dict | None]:
    data = json.loads(metrics_path.read_text())
    return [e.get("video_evidence") for e in data["unattended_metrics"]["unattended_events"]]


def url(server, path: str) -> str:
    """The server's URL on 127.0.0.1 (loopback only)."""
    host, port = server.server.socket.getsockname()[:2]
    assert host == "127.0.0.1"
    return f"http://127.0.0.1:{port}{path}"


def requests_to(httpserver, path: str) -> list[Request]:
    return [req for req, _ in httpserver.log if req.path == path]


@pytest.fixture
def site(tmp_path, monkeypatch) -> Site:
    monkeypatch.setenv("VIZO_API_KEY", KEY)
    return Site(tmp_path)


@pytest.fixture
def api(httpserver):
    """Upload and incident endpoints on 127.0.0.1; uploads get numbered file names."""
    def upload(request: Request) -> Response:
        n = len(requests_to(httpserver, UPLOAD)) + 1
        return Response(json.dumps({"filename": f"stored_{n}.mp4"}), content_type="application/json")

    httpserver.expect_request(UPLOAD, method="POST").respond_with_handler(upload)
    httpserver.expect_request(ALERTS, method="POST").respond_with_json({"ok": True})
    httpserver.expect_request("/api/other_alerts", method="POST").respond_with_json({"ok": True})
    return httpserver


@pytest.mark.parametrize("post_roll", [0.5, 1.5], ids=["same-settings", "changed-post-roll"])
def test_rerun_links_the_earlier_clip_and_writes_no_new_one(site, caplog, post_roll):
    first = site.run()
    [clip] = site.clips()
    [before] = evidence_in(first["metrics"])
    assert before["video_url"].startswith("file://") and before["segment_filename"] == clip

    caplog.set_level(logging.INFO)
    second = site.run(post_roll=post_roll)
    assert site.clips() == [clip]  # nothing new in the folder, so nothing the outbox does not own
    assert second["seg"].written == [] and second["seg"].adopted == [(EID, 1)]
    assert evidence_in(second["metrics"]) == [before]
    assert evidence_in(first["metrics"]) == [before]
    assert len(site.local_incidents()) == 1  # not reported to incidents.jsonl a second time
    [item] = site.items()
    assert item.state == LINKED and item.reported_to == (LOCAL,)
    assert item.links == {str(first["metrics"]): LINK_DONE, str(second["metrics"]): LINK_DONE}
    assert f"event {EID} was already recorded as {clip}; linking its earlier evidence into this run" in caplog.text
    assert "clip written" not in caplog.text  # decided before writing: not written, then thrown away


def test_rerun_with_the_disk_low_still_links_the_earlier_clip(site, caplog):
    first = site.run()
    second = site.run(min_free_mb=1e12)  # more than any disk has: no new clip could be started
    assert second["seg"].skipped == 0 and evidence_in(second["metrics"]) == evidence_in(first["metrics"]) != [None]
    third = Site(site.root / "elsewhere").run(min_free_mb=1e12)  # a first run on a full disk: no evidence, said so
    assert evidence_in(third["metrics"]) == [None] and f"no clip for {EID}: the disk is low" in caplog.text


def test_rerun_into_the_same_output_folder_links_the_repeated_entry(site):
    first = site.run()
    site.run(output=first["metrics"].parent)
    assert site.clips() and len(site.clips()) == 1
    both = evidence_in(first["metrics"])
    assert len(both) == 2 and both[0] == both[1] is not None  # the file got the event twice; both linked


def test_rerun_with_new_endpoints_delivers_there_once_and_a_second_rerun_sends_nothing(site, api):
    first = site.run()  # local only
    [local] = site.local_incidents()
    upload_url, incident_url = url(api, UPLOAD), url(api, ALERTS)

    second = site.run(upload_url, incident_url)
    assert len(requests_to(api, UPLOAD)) == 1
    [report] = [json.loads(r.get_data()) for r in requests_to(api, ALERTS)]
    assert report["incident_id"] == local["incident_id"]  # one incident, whatever the endpoint
    assert report["video_evidence"]["video_url"] == TEMPLATE.format(filename="stored_1.mp4")
    [evidence] = evidence_in(second["metrics"])
    assert evidence == report["video_evidence"]
    assert evidence_in(first["metrics"]) == [evidence]  # the first run's file now points at the server copy too
    assert len(site.local_incidents()) == 1
    [item] = site.items()
    assert item.uploaded_to.startswith("http://127.0.0.1:") and item.reported_to == (LOCAL, item.reported_to[1])
    assert item.state == LINKED

    third = site.run(upload_url, incident_url)
    fourth = site.run()  # and local-only again: incidents.jsonl already has it
    assert len(api.log) == 2  # still the one upload and the one report
    assert evidence_in(third["metrics"]) == [evidence] and evidence_in(fourth["metrics"]) == [evidence]
    assert len(site.local_incidents()) == 1 and len(site.clips()) == 1
    for path in site.root.rglob("*"):  # the key is in no file (outbox, metrics, incidents)
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_clip_deleted_by_retention_is_not_written_again(site, api, caplog):
    upload_url, incident_url = url(api, UPLOAD), url(api, ALERTS)
    site.run(upload_url, incident_url)
    [clip] = site.clips()
    outbox = Outbox(site.outbox_path)
    swept = Retention(outbox, site.segments, max_age_hours=1, clock=lambda: 2e9).sweep()
    outbox.close()
    assert swept.deleted == [clip] and site.clips() == []

    second = site.run(upload_url, incident_url)
    assert site.clips() == [] and second["seg"].adopted == [(EID, 1)]  # the server copy is the evidence
    assert len(api.log) == 2
    [evidence] = evidence_in(second["metrics"])
    assert evidence["video_url"] == TEMPLATE.format(filename="stored_1.mp4")

    caplog.set_level(logging.WARNING)
    third = site.run(upload_url, url(api, "/api/other_alerts"))  # a new incident endpoint: reported there once
    [report] = [json.loads(r.get_data()) for r in requests_to(api, "/api/other_alerts")]
    assert report["video_evidence"] == evidence and len(requests_to(api, UPLOAD)) == 1
    assert evidence_in(third["metrics"]) == [evidence]
    assert "is no longer on disk" not in caplog.text  # same upload destination: nothing to upload

    fourth = site.run(url(api, "/elsewhere/upload"), url(api, "/api/other_alerts"))
    assert "is no longer on disk" in caplog.text  # a new upload destination, but the clip is gone: keep the old copy
    assert len(api.log) == 3 and evidence_in(fourth["metrics"]) == [evidence]
    [item] = site.items()
    assert item.state == LINKED


def test_local_clip_lost_then_rerun_writes_a_new_clip_the_row_owns(site):
    first = site.run()
    [old] = site.clips()
    (site.segments / old).unlink()  # lost by hand: never on a server, so the row has no evidence left
    second = site.run()
    [new] = site.clips()
    assert new != old and second["seg"].written == [site.segments / new]
    [item] = site.items()
    assert Path(item.segment_path).name == new and item.state == LINKED
    assert evidence_in(first["metrics"])[0]["segment_filename"] == new  # both files point at the clip that exists
    assert evidence_in(second["metrics"])[0]["segment_filename"] == new
    assert len(site.local_incidents()) == 1  # same incident, same endpoint: not reported again


def test_long_event_adopts_every_part_and_writes_only_a_missing_one(site):
    site.run(max_seconds=1.0, duration=2.5, n_frames=50)
    parts = site.clips()
    assert len(parts) == 4
    second = site.run(max_seconds=1.0, duration=2.5, n_frames=50)
    assert site.clips() == parts and second["seg"].adopted == [(EID, p) for p in (1, 2, 3, 4)]

    lost = next(p for p in parts if "_part3" in p)
    (site.segments / lost).unlink()
    third = site.run(max_seconds=1.0, duration=2.5, n_frames=50)
    [rewritten] = third["seg"].written
    assert "_part3" in rewritten.name
    assert sorted(site.clips()) == sorted([p for p in parts if p != lost] + [rewritten.name])
    assert all(i.state == LINKED for i in site.items()) and len(site.local_incidents()) == 4


def test_time_mode_rerun_records_no_event_twice(site):
    first = site.run(mode="time", max_seconds=2.0)
    second = site.run(mode="time", max_seconds=2.0)
    [item] = site.items()
    assert item.state == LINKED and second["seg"].adopted == [(EID, 1)]
    assert evidence_in(second["metrics"]) == evidence_in(first["metrics"]) != [None]
    assert len(site.local_incidents()) == 1


def test_a_failed_redelivery_is_logged_for_the_run_that_misses_its_evidence(site, httpserver, caplog):
    site.run()
    httpserver.expect_request(UPLOAD).respond_with_data("{}", status=401)
    caplog.set_level(logging.WARNING)
    second = site.run(url(httpserver, UPLOAD), url(httpserver, ALERTS))
    assert evidence_in(second["metrics"]) == [None]
    [item] = site.items()
    assert item.state == FAILED and len(httpserver.log) == 1
    assert f"{EID} has no video_evidence in analytics_metrics.json (failed, delivery failed: " in caplog.text


def test_a_part_recorded_by_another_writer_meanwhile_is_adopted_and_the_duplicate_removed(site):
    seg = segmenter(site.segments, metrics_path=str(site.root / "m.json"), pre_roll=0.5, post_roll=0.5)
    stream = frames(60)
    for f in stream[:20]:
        f.events = [event("start", 1.0, 0.0)] if f.index == 10 else []
        seg.process(f)
    deadline = time.monotonic() + 30
    while not seg.status()["clips_open"] and time.monotonic() < deadline:  # the worker opened the clip
        time.sleep(0.01)
    assert seg.status()["clips_open"] == 1
    other = site.segments / "segment_99_x_unattended_start.mp4"
    other.write_bytes(b"\0" * 100)
    outbox = Outbox(site.outbox_path)
    outbox.add(EID, 1, "unattended", str(other), event("end", 1.0, 2.0).to_dict())
    run(seg, stream[20:], {30: [event("end", 1.0, 2.0)]})
    assert site.clips() == [other.name] and seg.written == [] and seg.adopted == [(EID, 1)]
    [item] = outbox.all()
    assert item.segment_path == str(other) and str(site.root / "m.json") in item.links
    outbox.close()


def test_linking_stale_evidence_is_refused_once_a_rerun_adopted_the_item(site):
    site.run()
    outbox = Outbox(site.outbox_path)
    [item] = outbox.all()
    outbox.advance(item.id, REPORTED)
    stale = outbox.get(item.id)
    outbox.adopt(item.id, str(site.root / "later" / "analytics_metrics.json"))  # a re-run, meanwhile
    assert not outbox.set_links(stale.id, {}, stale.video_url)
    assert outbox.get(item.id).state == UPLOADED  # still due for the re-run's delivery, not marked linked
    outbox.close()


OLD_SCHEMA = """
CREATE TABLE evidence (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, part INTEGER NOT NULL,
    kind TEXT NOT NULL, segment_path TEXT NOT NULL, event_json TEXT NOT NULL, state TEXT NOT NULL,
    incident_id TEXT UNIQUE, uploaded_filename TEXT, video_url TEXT, upload_timestamp TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, UNIQUE (event_id, part));
"""


def test_an_older_outbox_is_migrated_and_nothing_it_delivered_goes_out_twice(tmp_path, api):
    segments = tmp_path / "segments"
    segments.mkdir()
    db = sqlite3.connect(segments / "outbox.sqlite")
    db.executescript(OLD_SCHEMA)
    rows = [("ev-local", "incident_a_1", "file:///x/a.mp4"), ("ev-remote", "incident_b_2", "https://s3/b.mp4")]
    for n, (eid, incident, video_url) in enumerate(rows, 1):
        clip = segments / f"segment_{n}_x_unattended_start.mp4"
        clip.write_bytes(os.urandom(100))
        record = {**event("end", 1.0, 2.0, eid).to_dict(), "metrics_path": str(tmp_path / "m.json")}
        db.execute("INSERT INTO evidence (event_id, part, kind, segment_path, event_json, state, incident_id, "
                   "uploaded_filename, video_url, created, updated) VALUES (?, 1, 'unattended', ?, ?, 'linked', ?, ?, ?, 0, 0)",
                   (eid, str(clip), json.dumps(record), incident, clip.name, video_url))
    db.commit()
    db.close()
    (segments / "incidents.jsonl").write_text(json.dumps({"incident_id": "incident_a_1"}) + "\n")

    outbox = Outbox(segments / "outbox.sqlite")
    local, remote = outbox.all()
    assert (local.uploaded_to, local.reported_to) == (LOCAL, (LOCAL,))
    assert (remote.uploaded_to, remote.reported_to) == (UNKNOWN_REMOTE, (UNKNOWN_REMOTE,))
    assert local.links == {str(tmp_path / "m.json"): LINK_DONE}
    for item in (local, remote):
        outbox.adopt(item.id, str(tmp_path / "rerun.json"))
    build_courier(outbox, "s", "c", url(api, UPLOAD), url(api, ALERTS), TEMPLATE, segments,
                  attempts=1, backoff=0.01).drain()
    reports = [json.loads(r.get_data())["incident_id"] for r in requests_to(api, ALERTS)]
    assert reports == ["incident_a_1"] and len(requests_to(api, UPLOAD)) == 1  # the remote one: not again
    assert Outbox(segments / "outbox.sqlite").counts()[REPORTED] == 2
    outbox.close()


# -- end to end: the demo, then a re-run with endpoints ----------------------------------------

DEMO = ("+site=demo", "runtime.progress=false", "graph.preview=null", "source.stride=2")  # stride: half the work


@pytest.fixture(scope="module")
def demo_once(tmp_path_factory):
    """The demo run once, local only, into a private evidence folder."""
    root = tmp_path_factory.mktemp("rerun")
    result = run_cli(*DEMO, f"output_dir={root}/first", f"evidence.dir={root}/segments",
                     env={"VIZO_UPLOAD_URL": "", "VIZO_INCIDENT_URL": "", "VIZO_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    return root


def test_demo_then_rerun_with_endpoints(demo_once, api):
    """The user's sequence. Checked as invariants, so the test holds while the rules evolve:
    events seen by both runs reuse their clip and incident; only events new to the re-run get clips."""
    root = demo_once
    before = sorted(p.name for p in (root / "segments").glob("*.mp4"))
    local = [json.loads(x) for x in (root / "segments" / "incidents.jsonl").read_text().splitlines()]
    first = evidence_in_all(root / "first" / "analytics_metrics.json")
    assert before and len(local) == len(first) and all(e is not None for e in first.values())

    env = {"VIZO_UPLOAD_URL": url(api, UPLOAD), "VIZO_INCIDENT_URL": url(api, ALERTS), "VIZO_API_KEY": KEY}
    result = run_cli(*DEMO, f"output_dir={root}/second", f"evidence.dir={root}/segments", env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    second = evidence_in_all(root / "second" / "analytics_metrics.json")
    assert second and all(e is not None for e in second.values()), second  # every event has its evidence
    assert "has no video_evidence" not in output
    shared = first.keys() & second.keys()
    assert shared, "the same footage and settings should find the same events"
    for eid in shared:  # the earlier clip and incident, now on the server
        assert second[eid]["segment_filename"] == first[eid]["segment_filename"], eid
        assert second[eid]["incident_id"] == first[eid]["incident_id"], eid
        assert second[eid]["video_url"].startswith("https://s3-noi.aces3.ai/vizo361/stored_"), eid
    assert output.count("linking its earlier evidence into this run") == len(shared), output

    after = sorted(p.name for p in (root / "segments").glob("*.mp4"))
    outbox = Outbox(root / "segments" / "outbox.sqlite")
    owned = {Path(item.segment_path).name for item in outbox.all()}
    outbox.close()
    assert set(after) <= owned  # no orphan clip
    assert set(after) - set(before) == {second[eid]["segment_filename"] for eid in second.keys() - first.keys()}

    uploads = sorted(r.files["file"].filename for r in requests_to(api, UPLOAD))
    reports = sorted(json.loads(r.get_data())["incident_id"] for r in requests_to(api, ALERTS))
    assert uploads == sorted(e["segment_filename"] for e in second.values())  # each clip of the run once
    assert reports == sorted(e["incident_id"] for e in second.values())  # each incident once
    assert all(r.headers.get("X-API-Key") == KEY for r, _ in api.log)
    assert len((root / "segments" / "incidents.jsonl").read_text().splitlines()) == len(local)
    assert KEY not in output
    for path in root.rglob("*"):  # run.json, outbox, metrics, incidents: the key is in none
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def evidence_in_all(metrics_path: Path) -> dict[str, dict | None]:
    data = json.loads(metrics_path.read_text())
    return {e["event_id"]: e.get("video_evidence") for section, name in
            (("interaction_metrics", "interaction_times"), ("unattended_metrics", "unattended_events"),
             ("queue_metrics", "queue_events")) for e in data[section][name]}
