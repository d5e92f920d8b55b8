"""Live source against a real RTSP server on 127.0.0.1 that drops and comes back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, clip
from tests.rtsp_camera import Camera, free_port, write_annexb
from vizoflow.errors import ConfigError
from vizoflow.nodes.live import LiveSource, redact_url


@pytest.fixture(scope="module")
def annexb(tmp_path_factory) -> Path:
    return write_annexb(clip("intel-one-by-one"), tmp_path_factory.mktemp("rtsp") / "clip.h264")


@pytest.fixture
def camera(annexb):
    cam = Camera(annexb, free_port())
    cam.start()
    yield cam
    cam.kill()


def frames_within(source: LiveSource, seconds: float, until: int) -> list:
    """Up to ``until`` frames; a timer stops the source after ``seconds`` even if none come."""
    got = []
    timer = threading.Timer(seconds, source.stop)
    timer.start()
    try:
        for frame in source:
            got.append(frame)
            if len(got) >= until:
                break
    finally:
        timer.cancel()
    return got


def test_reads_frames_with_monotonic_timestamps_and_a_wall_clock_epoch(camera):
    started = time.time()
    source = LiveSource(camera.url, name="entrance", stall_seconds=3)
    try:
        got = frames_within(source, 30, until=20)
    finally:
        source.close()
    assert len(got) == 20 and got[0].image.shape == (432, 768, 3)
    assert 0 <= got[0].timestamp < got[-1].timestamp < 40  # seconds since the source started, not since 1970
    assert {f.epoch for f in got} == {source.epoch} and abs(source.epoch - started) < 1
    assert abs(got[-1].epoch + got[-1].timestamp - time.time()) < 10 and got[0].video == "entrance"
    assert [f.index for f in got] == sorted(f.index for f in got)


def test_server_killed_and_restarted_the_source_reconnects_and_carries_on(camera):
    source = LiveSource(camera.url, stall_seconds=2, backoff_initial=0.5, backoff_max=2)
    try:
        before = frames_within(source, 30, until=10)
        camera.kill()
        time.sleep(3)
        camera.start()
        after = frames_within(source, 40, until=10)
    finally:
        source.close()
    assert len(before) == 10 and len(after) == 10
    assert source.stats.reconnects >= 1
    assert after[-1].timestamp - before[-1].timestamp >= 3  # the outage is a gap on the clock


def test_refused_connection_retries_with_backoff_not_a_busy_loop():
    source = LiveSource(f"rtsp://user:secret@127.0.0.1:{free_port()}/cam", stall_seconds=1, backoff_initial=0.2, backoff_max=0.8)
    started = time.monotonic()
    try:
        got = frames_within(source, 3, until=1)
    finally:
        source.close()
    assert got == [] and time.monotonic() - started < 10
    assert 2 <= source.stats.reconnects <= 8  # 0.2, 0.4, 0.8, 0.8 ... in 3 s
    assert source.stats.last_error


def test_password_is_kept_out_of_log_urls():
    assert redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1") == "rtsp://admin:***@10.0.0.5:554/s1"
    with pytest.raises(ConfigError, match="policy"):
        LiveSource("rtsp://x/y", policy="some")


def test_store42_without_a_camera_url_is_a_one_line_error_before_the_detector_loads(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORE42_")}
    env["STORE42_ENTRANCE_URL"] = "rtsp://127.0.0.1:9/cam"  # the checkout camera's is missing
    result = subprocess.run([sys.executable, "-m", "vizoflow", "+site=store42", f"output_dir={tmp_path}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "STORE42_CHECKOUT_URL" in result.stderr and len(result.stderr.strip().splitlines()) == 1
