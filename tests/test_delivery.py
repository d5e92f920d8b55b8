"""Evidence delivery against a real HTTP server on 127.0.0.1 (pytest-httpserver), no mocks."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from werkzeug import Request, Response

from tests.nodes.test_analytics import V11_SCHEMA
from vizoflow.analytics.dayfile import AnalyticsFile
from vizoflow.events import Event
from vizoflow.evidence.courier import Courier
from vizoflow.evidence.delivery import (
    HttpClient,
    IncidentReporter,
    PermanentError,
    RetryPolicy,
    TransientError,
    Uploader,
    safe_filename,
)
from vizoflow.evidence.linker import EvidenceLinker
from vizoflow.evidence.outbox import Outbox

KEY = "sekret-KEY-4242"
TEMPLATE = "https://s3-noi.aces3.ai/vizo361/{filename}"
EPOCH = 1_761_390_000.0


def make_event(eid: str = "interaction-20251025T110052.000-100-200", ids=(100, 200)) -> Event:
    return Event("interaction", "end", eid, "cam", ids, ((1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)),
                 0.873, 52.0, 30.0, epoch=EPOCH)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """An outbox with one written clip, a metrics file holding its event, and a key in the env."""
    monkeypatch.setenv("VIZO_API_KEY", KEY)
    clip = tmp_path / "segment_8_20251025_113052_interaction_start.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    metrics = AnalyticsFile(tmp_path / "analytics_metrics.json")
    event = make_event()
    metrics.add_event(event)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    record = {**event.to_dict(), "metrics_path": str(metrics.path)}
    item_id = outbox.add(event.event_id, 1, event.kind, str(clip), record)
    return {"tmp": tmp_path, "clip": clip, "metrics": metrics, "outbox": outbox, "item": item_id}


def courier(httpserver, outbox, attempts=3, timeout_base=5.0) -> Courier:
    client = HttpClient(os.environ.get("VIZO_API_KEY"), RetryPolicy(attempts=attempts, backoff=0.01))
    uploader = Uploader(client, httpserver.url_for("/uploadFile"), TEMPLATE, timeout_base=timeout_base, timeout_per_mb=0.0)
    reporter = IncidentReporter(client, httpserver.url_for("/api/Addprolificai_alerts"))
    return Courier(outbox, uploader, reporter, site="store42", camera="entrance", retry_base=0.0)


def test_happy_path_uploads_reports_and_links(httpserver, world):
    seen = {}

    def upload(request: Request) -> Response:
        seen["key"] = request.headers.get("X-API-Key")
        seen["files"] = {k: (f.filename, len(f.read())) for k, f in request.files.items()}
        return Response(json.dumps({"filename": "prolific_upload_1642248025_abc123.mp4"}), content_type="application/json")

    httpserver.expect_request("/uploadFile", method="POST").respond_with_handler(upload)
    httpserver.expect_request("/api/Addprolificai_alerts", method="POST",
                              headers={"X-API-Key": KEY}).respond_with_json({"ok": True})
    assert courier(httpserver, world["outbox"]).drain() == 1
    assert seen["key"] == KEY
    assert seen["files"] == {"file": (world["clip"].name, world["clip"].stat().st_size)}
    incident = json.loads(httpserver.log[-1][0].get_data())
    assert incident["incident_id"].startswith("incident_20251025_110052_")
    assert incident["event_type"] == "interaction" and incident["confidence"] == 87.3
    assert incident["site"] == "store42" and incident["camera"] == "entrance"
    assert incident["bounding_boxes"][1] == {"track_id": 200, "x1": 5.0, "y1": 6.0, "x2": 7.0, "y2": 8.0}
    assert incident["start_time"] == "2025-10-25T11:00:52.000+00:00" and incident["duration_seconds"] == 30.0
    assert incident["video_evidence"] == {
        "segment_filename": world["clip"].name, "uploaded_filename": "prolific_upload_1642248025_abc123.mp4",
        "video_url": "https://s3-noi.aces3.ai/vizo361/prolific_upload_1642248025_abc123.mp4",
        "incident_id": incident["incident_id"], "upload_timestamp": incident["video_evidence"]["upload_timestamp"]}
    assert EvidenceLinker(world["outbox"], world["metrics"]).link() == 1
    data = json.loads((world["tmp"] / "analytics_metrics.json").read_text())
    import jsonschema

    jsonschema.validate(data, V11_SCHEMA)
    assert data["interaction_metrics"]["interaction_times"][0]["video_evidence"] == incident["video_evidence"]
    assert world["outbox"].counts()["linked"] == 1


def test_two_incidents_in_the_same_second_get_different_ids(httpserver, world):
    event = make_event(ids=(100, 201))
    world["outbox"].add(event.event_id + "-b", 1, "interaction", str(world["clip"]), event.to_dict())
    httpserver.expect_request("/uploadFile").respond_with_json({"filename": "a.mp4"})
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({})
    assert courier(httpserver, world["outbox"]).drain() == 2
    ids = [i.incident_id for i in world["outbox"].all()]
    assert len(set(ids)) == 2 and all(i.startswith("incident_20251025_110052_") for i in ids)


def sequence(*statuses):
    """Handler answering the given statuses in turn (200 carries a filename)."""
    calls = []

    def handler(request: Request) -> Response:
        status = statuses[min(len(calls), len(statuses) - 1)]
        calls.append(status)
        body = json.dumps({"filename": "stored.mp4"}) if status == 200 else "{}"
        return Response(body, status=status, content_type="application/json")

    handler.calls = calls
    return handler


def test_500_500_200_is_delivered_on_the_third_attempt(httpserver, world):
    upload = sequence(500, 500, 200)
    httpserver.expect_request("/uploadFile").respond_with_handler(upload)
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({})
    assert courier(httpserver, world["outbox"]).drain() == 1
    assert upload.calls == [500, 500, 200]


def test_three_500s_stay_pending_and_go_out_on_the_next_drain(httpserver, world):
    upload = sequence(500, 500, 500, 200)
    httpserver.expect_request("/uploadFile").respond_with_handler(upload)
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({})
    c = courier(httpserver, world["outbox"])
    assert c.drain() == 0
    item = world["outbox"].get(world["item"])
    assert item.state == "clip_written" and item.attempts == 1 and "HTTP 500" in item.last_error
    assert c.drain() == 1 and upload.calls == [500, 500, 500, 200]


def test_429_honours_retry_after(httpserver, world):
    waits = []
    client = HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.01), sleep=waits.append)
    httpserver.expect_request("/x").respond_with_handler(
        lambda r: Response("{}", status=429, headers={"Retry-After": "7"}) if not waits else Response("{}", status=200))
    client.post(httpserver.url_for("/x"), timeout=5)
    assert waits == [7.0]


def test_timeout_is_transient_and_bounded(httpserver, world, caplog):
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(json.dumps({"filename": "late.mp4"}))

    httpserver.expect_request("/uploadFile").respond_with_handler(slow)
    started = time.monotonic()
    assert courier(httpserver, world["outbox"], attempts=2, timeout_base=0.3).drain() == 0
    assert time.monotonic() - started < 5
    assert "timed out" in world["outbox"].get(world["item"]).last_error
    assert "(attempt 1 of 2)" in caplog.text  # a POST that timed out is tried again


@pytest.mark.parametrize(("body", "state", "words"), [
    ("<html>502 proxy</html>", "clip_written", "not JSON"),
    (json.dumps({"status": "ok"}), "failed", "missing filename"),
    (json.dumps({"filename": "../../x.mp4"}), "failed", "unsafe"),
    (json.dumps({"filename": "a/b.mp4"}), "failed", "unsafe"),
    (json.dumps({"filename": "evil\n.mp4"}), "failed", "unsafe"),
])
def test_bad_answers_are_not_trusted(httpserver, world, body, state, words):
    httpserver.expect_request("/uploadFile").respond_with_data(body, content_type="application/json")
    assert courier(httpserver, world["outbox"]).drain() == 0
    item = world["outbox"].get(world["item"])
    assert item.state == state and words in item.last_error and item.uploaded_filename is None


def test_401_fails_at_once_without_a_retry_storm_and_can_be_retried_on_demand(httpserver, world):
    upload = sequence(401, 200)
    httpserver.expect_request("/uploadFile").respond_with_handler(upload)
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({})
    c = courier(httpserver, world["outbox"])
    assert c.drain() == 0 and c.drain() == 0
    assert upload.calls == [401]
    item = world["outbox"].get(world["item"])
    assert item.state == "failed" and "HTTP 401" in item.last_error and "VIZO_API_KEY" in item.last_error
    assert world["outbox"].retry_failed() == 1
    assert c.drain() == 1 and upload.calls == [401, 200]


def test_the_api_key_is_in_no_log_line_and_no_file(httpserver, world, caplog):
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/uploadFile").respond_with_handler(sequence(500, 401))
    c = courier(httpserver, world["outbox"])
    c.drain()
    with pytest.raises(PermanentError) as info:
        c.uploader.upload(world["clip"])
    assert KEY not in caplog.text and KEY not in str(info.value)
    for path in world["tmp"].rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(("status", "retry_after", "waits"), [
    (500, None, [0.5, 1.0]),  # exponential backoff from the policy's first wait
    (408, None, [0.5, 1.0]),
    (429, "4", [4.0, 4.0]),
    (503, "3", [3.0, 3.0]),  # a 503's Retry-After is honoured too
    (429, "100", [5.0, 5.0]),  # capped at max_wait
    (429, "soon", [0.5, 1.0]),  # unreadable: the backoff
])
def test_retried_answers_wait_the_backoff_or_the_servers_retry_after(httpserver, status, retry_after, waits):
    seen = []
    client = HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.5, max_wait=5.0), sleep=seen.append)
    headers = {"Retry-After": retry_after} if retry_after else {}
    httpserver.expect_request("/x", method="POST").respond_with_response(Response("{}", status=status, headers=headers))
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        client.post(httpserver.url_for("/x"), timeout=5, json={"a": 1})
    assert seen == waits and len(httpserver.log) == 3


@pytest.mark.parametrize(("status", "headers"), [(400, {}), (403, {}), (404, {}), (413, {"Retry-After": "1"})])
def test_other_4xx_are_permanent_after_one_attempt(httpserver, status, headers):
    seen = []
    client = HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.5), sleep=seen.append)
    httpserver.expect_request("/x").respond_with_response(Response("{}", status=status, headers=headers))
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        client.post(httpserver.url_for("/x"), timeout=5, json={})
    assert seen == [] and len(httpserver.log) == 1


def test_every_attempt_sends_the_whole_clip_and_the_key(httpserver, world):
    received = []

    def upload(request: Request) -> Response:
        part = request.files["file"]
        received.append((request.headers.get("X-API-Key"), part.filename, part.read()))
        if len(received) < 3:
            return Response("{}", status=500)
        return Response(json.dumps({"filename": "stored.mp4"}), content_type="application/json")

    httpserver.expect_request("/uploadFile", method="POST").respond_with_handler(upload)
    client = HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.01))
    stored = Uploader(client, httpserver.url_for("/uploadFile"), TEMPLATE).upload(world["clip"])
    assert stored.uploaded_filename == "stored.mp4"
    assert received == [(KEY, world["clip"].name, world["clip"].read_bytes())] * 3


@contextlib.contextmanager
def raw_server(*answers: bytes | None):
    """A bare HTTP server on 127.0.0.1: each connection, in turn, has its request read and gets the next
    answer's raw bytes (None: hung up without an answer). Yields the upload URL and the request bodies read."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    bodies: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                bodies.append(body)
                if answer is not None:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/uploadFile", bodies
    finally:
        listener.close()
        thread.join(10)


STORED = b'{"filename": "stored.mp4"}'
OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
    len(STORED), STORED)


def test_a_connection_dropped_without_an_answer_is_tried_again_with_the_same_body(world):
    with raw_server(None, OK_ANSWER) as (url, bodies):
        stored = Uploader(HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.01)), url, TEMPLATE).upload(world["clip"])
    assert stored.uploaded_filename == "stored.mp4"
    assert len(bodies) == 2 and all(world["clip"].read_bytes() in body for body in bodies)


def test_a_cut_off_answer_is_transient(world):
    """The answer's body is read after urllib3's retries (requests streams it), so a cut-off body is not
    tried again at once: the outbox tries it later, like an HTML page in place of JSON."""
    cut = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" + STORED[:10]
    with raw_server(cut) as (url, bodies), pytest.raises(TransientError, match="cut off"):
        Uploader(HttpClient(KEY, RetryPolicy(attempts=3, backoff=0.01)), url, TEMPLATE, timeout_base=5).upload(world["clip"])
    assert len(bodies) == 1


def test_unreachable_server_is_transient(world):
    client = HttpClient(KEY, RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(TransientError, match="connection failed"):
        Uploader(client, "http://127.0.0.1:9/uploadFile", TEMPLATE).upload(world["clip"])


def test_safe_filename_accepts_plain_names_only():
    assert safe_filename("prolific_upload_1642248025_abc123.mp4") == "prolific_upload_1642248025_abc123.mp4"
    for bad in ["", ".hidden", "..", "a..b.mp4", "a\\b.mp4", "/etc/passwd", None, 12, "x\x00.mp4"]:
        with pytest.raises(PermanentError):
            safe_filename(bad)


def test_killed_while_uploads_are_pending_every_incident_arrives_exactly_once(httpserver, tmp_path):
    outbox_path = tmp_path / "outbox.sqlite"
    outbox = Outbox(outbox_path)
    for n in range(5):
        clip = tmp_path / f"segment_{n}_20251025_110000_unattended_start.mp4"
        clip.write_bytes(os.urandom(2000))
        e = Event("unattended", "end", f"unattended-{n}", "cam", (n,), ((0.0, 0.0, 1.0, 1.0),), 0.9, float(n), 31.0, epoch=EPOCH)
        outbox.add(e.event_id, 1, e.kind, str(clip), e.to_dict())
    outbox.close()
    uploads = []

    def slow_upload(request: Request) -> Response:
        uploads.append(request.files["file"].filename)
        time.sleep(0.4)
        return Response(json.dumps({"filename": f"stored_{len(uploads)}.mp4"}), content_type="application/json")

    httpserver.expect_request("/uploadFile").respond_with_handler(slow_upload)
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({})
    script = textwrap.dedent(f"""
        from vizoflow.evidence.delivery import HttpClient, IncidentReporter, RetryPolicy, Uploader
        from vizoflow.evidence.courier import Courier
        from vizoflow.evidence.outbox import Outbox
        client = HttpClient("k", RetryPolicy(attempts=3, backoff=0.01))
        c = Courier(Outbox({str(outbox_path)!r}), Uploader(client, {httpserver.url_for("/uploadFile")!r}, "{{filename}}"),
                    IncidentReporter(client, {httpserver.url_for("/api/Addprolificai_alerts")!r}), "s", "c")
        c.drain()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(uploads) < 3 and time.monotonic() < deadline:  # killed in the middle of the third upload
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert Outbox(outbox_path).pending() > 0
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    incidents = [json.loads(req.get_data())["event_id"] for req, _ in httpserver.log if req.path.endswith("alerts")]
    assert sorted(incidents) == [f"unattended-{n}" for n in range(5)]  # each exactly once
    assert Outbox(outbox_path).counts()["reported"] == 5


# -- what counts as success (docs/reliability.md, "What counts as a successful reply") --------------------------------

def report_answers(httpserver, world, body, status=200, content_type="application/json"):
    """Upload succeeds; the incident API answers ``body``; returns the item after one drain."""
    httpserver.expect_request("/uploadFile").respond_with_json({"filename": "stored.mp4"})
    httpserver.expect_request("/api/Addprolificai_alerts", method="POST").respond_with_data(
        body, status=status, content_type=content_type)
    moved = courier(httpserver, world["outbox"]).drain()
    return moved, world["outbox"].get(world["item"])


def test_an_html_page_with_200_from_the_incident_api_is_not_reported_and_is_retried(httpserver, world):
    moved, item = report_answers(httpserver, world, "<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    assert moved == 0 and item.state == "uploaded" and item.reported_to == ()
    assert item.attempts == 1 and "not JSON" in item.last_error and "text/html" in item.last_error
    httpserver.clear()  # the API is back: the next drain reports it, with the same incident id
    httpserver.expect_request("/api/Addprolificai_alerts").respond_with_json({"success": True})
    assert courier(httpserver, world["outbox"]).drain() == 1
    assert world["outbox"].get(world["item"]).state == "reported"
    assert json.loads(httpserver.log[-1][0].get_data())["incident_id"] == item.incident_id


@pytest.mark.parametrize("answer", [
    {"success": False, "message": "invalid camera"},
    {"success": "false"},
    {"ok": False},
    {"status": "error", "message": "db down"},
    {"status": 500},
    {"error": "quota exceeded"},
])
def test_a_json_200_that_says_failure_is_not_reported_and_is_parked_with_the_reason(httpserver, world, answer):
    moved, item = report_answers(httpserver, world, json.dumps(answer))
    assert moved == 0 and item.state == "failed" and item.reported_to == ()
    assert "the server says" in item.last_error or "answers an error" in item.last_error
    message = answer.get("message") or answer.get("error")
    if message:
        assert message in item.last_error


@pytest.mark.parametrize("answer", [{"success": True, "id": 12}, {"status": "success"}, {"ok": True}, {}])
def test_a_json_200_that_does_not_say_failure_is_reported(httpserver, world, answer):
    moved, item = report_answers(httpserver, world, json.dumps(answer))
    assert moved == 1 and item.state == "reported" and item.last_error is None


def test_204_no_content_counts_as_reported(httpserver, world):
    moved, item = report_answers(httpserver, world, "", status=204, content_type="")
    assert moved == 1 and item.state == "reported"


def test_an_empty_200_is_not_reported(httpserver, world):
    moved, item = report_answers(httpserver, world, "", status=200, content_type="")
    assert moved == 0 and item.state == "uploaded" and "empty answer" in item.last_error


@pytest.mark.parametrize(("body", "state", "words"), [
    (json.dumps({"success": False, "filename": "x.mp4", "message": "storage full"}), "failed", "storage full"),
    ("", "clip_written", "empty answer"),
    ("[1, 2]", "clip_written", "not an object"),
])
def test_an_upload_answer_that_says_failure_is_not_an_upload(httpserver, world, body, state, words):
    httpserver.expect_request("/uploadFile").respond_with_data(body, content_type="application/json")
    assert courier(httpserver, world["outbox"]).drain() == 0
    item = world["outbox"].get(world["item"])
    assert item.state == state and words in item.last_error and item.uploaded_filename is None
    assert not any(req.path.endswith("alerts") for req, _ in httpserver.log)
