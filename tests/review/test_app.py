"""The app's routes through HTTP (Starlette's test client): pages, API, clips with Range, password, paths."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import write_video
from vizoflow.evidence.outbox import Outbox
from vizoflow.review.app import create_app, loopback_host, password_ok
from vizoflow.review.folders import SiteRuns
from vizoflow.review.site import CameraLayout, ReviewSite

CLIP = "segment_000001_20261205_100000_interaction_start.mp4"


@pytest.fixture
def site(tmp_path: Path) -> ReviewSite:
    runs, segments = tmp_path / "outputs" / "shop", tmp_path / "segments"
    run = runs / "2026-12-05_10-00-00"
    run.mkdir(parents=True)
    segments.mkdir()
    (run / "interactions.jsonl").write_text(json.dumps({
        "event_id": "interaction-1", "kind": "interaction", "phase": "end", "camera": "video", "track_ids": [1, 2],
        "start": "2026-12-05T10:00:00.000+05:30", "end": "2026-12-05T10:00:14.000+05:30", "duration": 14.0,
        "details": {"staff_ids": [1], "customer_ids": [2]}}) + "\n")
    (run / "analytics_metrics_2026-12-05.json").write_text(json.dumps({
        "footfall_metrics": {"lines": {"door": {"hourly": {"2026-12-05T10:00+05:30": {"in": 3, "out": 1}}}}}}))
    (run / "heatmap_till_2026-12-05.png").write_bytes(b"\x89PNG not really")
    write_video(segments / CLIP, frames=30, fps=10.0)
    (tmp_path / "outside.mp4").write_bytes(b"private")
    (segments / "escape.mp4").symlink_to(tmp_path / "outside.mp4")
    outbox = Outbox(segments / "outbox.sqlite")
    outbox.add("interaction-1", 1, "interaction", f"segments/{CLIP}", {})
    outbox.close()
    import cv2

    cv2.imwrite(str(run / "latest.jpg"), np.full((48, 64, 3), 90, np.uint8))
    till = CameraLayout(name="till", own=False, zones={"counter": [[1, 1], [30, 1], [30, 30]]},
                        lines={"door": [[2, 40], [60, 40]]}, frame_size=[64, 48], needs={"rules.staff.zones": ["counter"]})
    return ReviewSite("shop", "Asia/Kolkata", SiteRuns(runs), segments, pre_roll=1.0, cameras=[till])


@pytest.fixture
def client(site: ReviewSite) -> TestClient:
    return TestClient(create_app(site), base_url="http://127.0.0.1:8765")


def test_the_alerts_page_lists_the_event_with_its_clip_and_local_times(client: TestClient):
    page = client.get("/alerts")
    assert page.status_code == 200
    assert page.text.count('class="alert"') == 1
    assert f'src="/clips/{CLIP}"' in page.text and "10:00:00" in page.text and "times in Asia/Kolkata" in page.text
    assert "evidence: <b>pending</b>" in page.text


def test_the_events_api_names_who_when_and_the_clip(client: TestClient):
    data = client.get("/api/events").json()
    assert data["day"] == "2026-12-05" and data["timezone"] == "Asia/Kolkata"
    (event,) = data["events"]
    assert {k: event[k] for k in ("event_id", "kind", "camera", "duration", "staff_ids", "customer_ids", "clip_url")} == {
        "event_id": "interaction-1", "kind": "interaction", "camera": "till", "duration": 14.0, "staff_ids": [1],
        "customer_ids": [2], "clip_url": f"/clips/{CLIP}"}
    assert event["delivery"]["state"] == "pending"
    assert client.get("/api/events", params={"kind": "queue"}).json()["events"] == []
    assert client.get("/api/events", params={"run": "nope"}).status_code == 404


def test_clips_are_served_with_range(client: TestClient, site: ReviewSite):
    whole = (site.evidence.root / CLIP).read_bytes()
    part = client.get(f"/clips/{CLIP}", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole)}"
    assert client.get(f"/clips/{CLIP}").content == whole


def test_a_thumbnail_is_a_jpeg_of_the_clip(client: TestClient):
    reply = client.get(f"/thumbnails/{CLIP}")
    assert reply.status_code == 200 and reply.content[:2] == b"\xff\xd8"


@pytest.mark.parametrize("url", ["/clips/..%2Foutside.mp4", "/clips/%2e%2e%2foutside.mp4", "/clips/escape.mp4",
                                 "/clips/outbox.sqlite", "/clips/%2Fetc%2Fpasswd", "/thumbnails/escape.mp4",
                                 "/runs/2026-12-05_10-00-00/..%2F..%2F..%2Foutside.mp4", "/runs/..%2F/latest.jpg",
                                 "/runs/2026-12-05_10-00-00/interactions.jsonl", "/static/..%2Fapp.py",
                                 "/clips/../../outside.mp4"])
def test_no_path_outside_the_outputs_and_evidence_is_read(client: TestClient, url: str):
    reply = client.get(url)
    assert reply.status_code == 404
    assert b"private" not in reply.content and b"import" not in reply.content


def test_the_day_page_has_charts_and_heat_maps(client: TestClient):
    page = client.get("/day")
    assert page.status_code == 200 and page.text.count("<svg") >= 1
    assert '/runs/2026-12-05_10-00-00/heatmap_till_2026-12-05.png' in page.text
    assert client.get("/runs/2026-12-05_10-00-00/heatmap_till_2026-12-05.png").status_code == 200


def test_the_cameras_page_draws_zones_on_the_latest_picture(client: TestClient):
    assert "counter" in client.get("/cameras").text
    drawn = client.get("/api/cameras/till/picture")
    plain = client.get("/api/cameras/till/picture", params={"layout": "false"})
    assert drawn.headers["content-type"] == "image/jpeg" and drawn.content != plain.content
    assert client.get("/api/cameras/nope/picture").status_code == 404
    (camera,) = client.get("/api/cameras").json()["cameras"]
    assert camera["name"] == "till" and camera["picture_url"].startswith("/api/cameras/till/picture")
    assert camera["live"] is None and "counter" in camera["zones"]  # no live run serves this page


def test_the_setup_api_checks_and_returns_yaml(client: TestClient):
    data = client.get("/api/setup/till").json()
    assert data["frame_size"] == [64, 48] and "counter" in data["zones"] and data["picture"]
    good = client.post("/api/setup/till/yaml", json={"zones": {"counter": [[1, 1], [30, 1], [30, 30]]}, "lines": {},
                                                     "frame_size": [64, 48]}).json()
    assert good["ok"] and "counter: [[1, 1], [30, 1], [30, 30]]" in good["yaml"]
    missing = client.post("/api/setup/till/yaml", json={"zones": {}, "lines": {}, "frame_size": [64, 48]}).json()
    assert not missing["ok"] and "rules.staff.zones names counter" in missing["warnings"][0]
    bad = client.post("/api/setup/till/yaml", json={"zones": {"x": [[1, 1], [99, 1], [9, 9]]}, "frame_size": [64, 48]})
    assert bad.status_code == 422 and "outside" in bad.json()["error"]


def test_the_page_is_read_only(client: TestClient):
    assert client.post("/api/events").status_code == 405
    assert client.delete(f"/clips/{CLIP}").status_code == 405
    assert client.put("/api/setup/till/yaml", json={}).status_code == 405


def basic(password: str, user: str = "manager") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_with_a_password_every_page_clip_and_call_needs_it(site: ReviewSite):
    client = TestClient(create_app(site, password="s3cret-pw"), base_url="http://shop-pc.local:8765")
    for url in ["/alerts", "/api/events", f"/clips/{CLIP}", "/static/review.css", "/day", "/api/setup/till", "/nope"]:
        reply = client.get(url)
        assert reply.status_code == 401, url
        assert reply.headers["www-authenticate"].startswith("Basic")
        assert client.get(url, headers=basic("wrong")).status_code == 401
    assert client.get("/api/events", headers=basic("s3cret-pw")).status_code == 200
    assert client.get(f"/clips/{CLIP}", headers={**basic("s3cret-pw"), "Range": "bytes=0-9"}).status_code == 206


@pytest.mark.parametrize("header", [None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"u:s3cret-pwX").decode()])
def test_malformed_or_wrong_credentials_are_refused(header):
    assert not password_ok(header, "s3cret-pw")


@pytest.mark.parametrize(("host", "ok"), [("127.0.0.1:8765", True), ("localhost:8765", True), ("[::1]:8765", True),
                                          ("127.0.0.1", True), ("localhost", True), ("evil.example:8765", False),
                                          ("127.0.0.1.evil.example", False), ("", False), (None, False),
                                          ("[::1].evil", False)])
def test_without_a_password_only_loopback_names_are_answered(host, ok):
    assert loopback_host(host) is ok


def test_a_page_reached_through_another_name_is_refused_without_a_password(site: ReviewSite):
    rebound = TestClient(create_app(site), base_url="http://attacker.example:8765")
    reply = rebound.get("/api/events")
    assert reply.status_code == 403 and "interaction-1" not in reply.text


def test_the_api_names_a_bad_day_or_kind_and_keeps_to_the_day_asked(client: TestClient):
    assert client.get("/api/events", params={"day": "yesterday"}).status_code == 422
    assert client.get("/api/events", params={"kind": "fight"}).status_code == 422
    empty = client.get("/api/events", params={"day": "2026-01-02"}).json()
    assert empty["day"] == "2026-01-02" and empty["events"] == []


def test_every_answer_is_kept_out_of_caches_and_frames(client: TestClient):
    headers = client.get("/alerts").headers
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"].startswith("default-src 'self'")


def test_a_site_with_cameras_serves_each_cameras_heat_map(tmp_path: Path):
    runs = tmp_path / "outputs"
    run = runs / "r1"
    (run / "entrance").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "analytics_metrics_2026-12-05.json").write_text("{}")
    (run / "entrance" / "heatmap_entrance_2026-12-05.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG private")
    (run / "entrance" / "heatmap_x_2026-12-05.png").symlink_to(tmp_path / "secret.png")
    cams = [CameraLayout("entrance", True, {}, {}, None), CameraLayout("till", True, {}, {}, None)]
    client = TestClient(create_app(ReviewSite("s", "UTC", SiteRuns(runs), tmp_path / "seg", 1.0, cams)),
                        base_url="http://127.0.0.1")
    assert '/runs/r1/entrance/heatmap_entrance_2026-12-05.png' in client.get("/day").text
    assert client.get("/runs/r1/entrance/heatmap_entrance_2026-12-05.png").status_code == 200
    assert client.get("/runs/r1/entrance/heatmap_x_2026-12-05.png").status_code == 404
    assert client.get("/runs/r1/nope/heatmap_entrance_2026-12-05.png").status_code == 404


def test_a_damaged_day_file_is_named_on_the_day_page(client: TestClient, site: ReviewSite):
    run = site.runs.pick()
    (run.path / "analytics_metrics_2026-12-05.json").write_text("{broken")
    page = client.get("/day")
    assert page.status_code == 200 and "cannot be read" in page.text


def test_a_clip_removed_meanwhile_or_undecodable_gives_no_500(client: TestClient, site: ReviewSite):
    (site.evidence.root / "segment_broken.mp4").write_bytes(b"not a video")
    assert client.get("/thumbnails/segment_broken.mp4").status_code == 422
    assert client.get("/thumbnails/segment_gone.mp4").status_code == 404
