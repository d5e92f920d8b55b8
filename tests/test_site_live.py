"""The two-camera store (``+site=store42``) on two real RTSP cameras on 127.0.0.1, one process.

One camera goes down and comes back while the other keeps being processed; ``/health``
names the dead one; SIGTERM ends cleanly with both cameras in the tables.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, clip
from tests.rtsp_camera import Camera, free_port, write_annexb

pytestmark = pytest.mark.slow


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}  # not serving yet


def camera_metric(port: int, name: str, camera: str) -> float:
    """``vizoflow_camera_<name>{camera="<camera>"}`` from /metrics (0 when not there yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    found = re.search(rf'^vizoflow_camera_{name}{{camera="{camera}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


def processed_rate(port: int, camera: str, seconds: float) -> float:
    """Frames of ``camera`` processed per second over the next ``seconds``."""
    before = camera_metric(port, "frames_processed", camera)
    time.sleep(seconds)
    return (camera_metric(port, "frames_processed", camera) - before) / seconds


@pytest.fixture
def cameras(tmp_path: Path):
    entrance = Camera(write_annexb(clip("intel-one-by-one"), tmp_path / "entrance.h264"))
    checkout = Camera(write_annexb(clip("ucf-checkout"), tmp_path / "checkout.h264", fps=10))
    entrance.start()
    checkout.start()
    yield entrance, checkout
    entrance.kill()
    checkout.kill()


def page_cameras(port: int) -> dict[str, dict]:
    """The review page's cameras (``/api/cameras``) by name; empty while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=3) as r:
            return {c["name"]: c for c in json.loads(r.read())["cameras"]}
    except OSError:
        return {}


def test_store42_runs_two_cameras_in_one_process_and_survives_losing_one(cameras, tmp_path):
    entrance, checkout = cameras
    env = {**os.environ, "STORE42_ENTRANCE_URL": entrance.url, "STORE42_CHECKOUT_URL": checkout.url,
           "YOLO_OFFLINE": "1"}
    env.pop("VIZO_UPLOAD_URL", None)
    env.pop("VIZO_INCIDENT_URL", None)
    port, page_port = free_port(), free_port()
    log = (tmp_path / "console.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vizoflow", "+site=store42", f"output_dir={tmp_path}/out",
                             f"evidence.dir={tmp_path}/segments", "evidence.upload_url=null",
                             "evidence.incident_url=null", f"status.port={port}", "status.interval=1",
                             "source.stall_seconds=2", "source.backoff_max=2", f"serve.port={page_port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: health(port)[0] == 200 and all(
            camera_metric(port, "frames_processed", c) > 10 for c in ("entrance", "checkout")), 120,
            "both cameras processed")
        before = processed_rate(port, "entrance", 5)
        checkout.kill()
        code, body = wait_for(lambda: (h := health(port))[0] == 503 and h, 30, "unhealthy during the outage")
        assert any(p.startswith("camera 'checkout' stalled") for p in body["problems"]), body
        assert not any("entrance" in p for p in body["problems"]), body
        page = wait_for(lambda: (c := page_cameras(page_port)) and not c["checkout"]["live"]["healthy"] and c, 30,
                        "the review page shows the checkout camera unhealthy")
        assert page["entrance"]["live"]["healthy"] and page["entrance"]["picture_url"], page  # its latest picture
        during = processed_rate(port, "entrance", 5)
        assert during >= 0.8 * before, (before, during)  # the live camera is not held up by the dead one
        stalled_at = camera_metric(port, "frames_processed", "checkout")
        checkout.start()
        wait_for(lambda: health(port)[0] == 200, 60, "healthy again once the checkout camera is back")
        wait_for(lambda: camera_metric(port, "frames_processed", "checkout") >= stalled_at + 10, 60,
                 "the checkout camera processed again")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    err = (tmp_path / "console.txt").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "camera checkout lost" in err and "CAMERA 'CHECKOUT' STALLED" in err
    assert re.search(r"entrance: in [\d.]+ fps, processed [\d.]+ fps", err)  # a part per camera in the status line
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "stopped"
    assert {c: row["frames"] > 10 for c, row in run["cameras"].items()} == {"entrance": True, "checkout": True}
    tracks = pl.read_parquet(tmp_path / "out" / "tracks.parquet")
    assert set(tracks["camera"].unique()) == {"entrance", "checkout"}
    occupancy = pl.read_parquet(tmp_path / "out" / "occupancy.parquet")  # the cameras' store tables, merged
    assert set(occupancy["camera"].unique()) == {"entrance", "checkout"}
    day = json.loads((tmp_path / "out" / "analytics_metrics.json").read_text())
    assert day["metadata"]["version"] == "1.1"
    assert set(day["occupancy_metrics"]["cameras"]) == {"entrance", "checkout"}
