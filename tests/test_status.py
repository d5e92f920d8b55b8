"""Status board, status line, and the /metrics and /health endpoints (loopback)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.runtime import PerCamera
from vizoflow.status import StatusBoard, StatusReporter, combine_status, status_line


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeCamera:
    """Camera-side numbers as LiveSource reports them."""

    def __init__(self) -> None:
        self.values = {"frames_received": 0.0, "frames_dropped": 0.0, "reconnects": 0.0, "seconds_since_frame": 0.0}

    def status(self) -> dict[str, float]:
        return dict(self.values)


class FakeEvidence:
    def __init__(self, pending: int = 0, busy: float = 0.0) -> None:
        self.pending, self.busy = pending, busy

    def status(self) -> dict[str, float]:
        return {"evidence_pending": self.pending, "evidence_busy_seconds": self.busy, "open_events": 1}


class FakeRule:
    def status(self) -> dict[str, float]:
        return {"open_events": 2}


def frame(people: int) -> Frame:
    det = sv.Detections(xyxy=np.tile([[0, 0, 10, 10]], (people, 1)).astype(float), tracker_id=np.arange(people))
    return Frame(video="cam", index=0, timestamp=0.0, image=np.zeros((4, 4, 3), np.uint8), detections=det)


def board_with(camera=None, evidence=None, clock=None):
    nodes = [("rule", FakeRule()), ("deliver", evidence or FakeEvidence()), ("plain", object())]
    return StatusBoard(camera, nodes, stall_seconds=10, backlog_items=5, refresh=0, clock=clock or Clock())


def test_snapshot_sums_node_numbers_and_reads_the_camera_live():
    camera, clock = FakeCamera(), Clock()
    board = board_with(camera, clock=clock)
    board.on_batch([frame(2), frame(3)])
    camera.values["frames_received"] = 42
    snap = board.snapshot()
    assert snap["frames_processed"] == 2 and snap["active_tracks"] == 3
    assert snap["open_events"] == 3  # 2 from the rule + 1 from the other node
    assert snap["frames_received"] == 42  # read now, not at the last batch


def test_health_tells_a_stalled_camera_from_a_stuck_pipeline_from_a_slow_api():
    camera, clock = FakeCamera(), Clock()
    evidence = FakeEvidence()
    board = board_with(camera, evidence, clock)
    board.on_batch([frame(1)])
    assert board.health() == (True, [])

    camera.values["seconds_since_frame"] = 12  # camera sends nothing
    clock.t += 12
    healthy, problems = board.health()
    assert not healthy and problems[0].startswith("camera stalled")

    camera.values["seconds_since_frame"] = 0.1  # frames arrive, nothing is processed
    healthy, problems = board.health()
    assert not healthy and problems[0].startswith("pipeline stuck")

    board.on_batch([frame(1)])  # processing again, but the upload API hangs
    evidence.pending, evidence.busy = 9, 75
    board.on_batch([frame(1)])
    healthy, problems = board.health()
    assert healthy and len(problems) == 1 and problems[0].startswith("degraded: evidence backlog 9")


def test_disk_low_is_unhealthy():
    class Segmenter:
        def status(self) -> dict[str, float]:
            return {"disk_low": 1.0, "disk_free_mb": 300.0}

    board = StatusBoard(None, [("segment", Segmenter())], refresh=0, clock=Clock())
    board.on_batch([frame(0)])
    healthy, problems = board.health()
    assert not healthy and problems == ["disk low: not writing clips (300 MB free)"]


def test_numbers_of_several_parts_combine_by_what_they_mean():
    a = {"open_events": 2.0, "disk_low": 0.0, "disk_free_mb": -1.0, "evidence_busy_seconds": 5.0,
         "seconds_since_frame": 30.0, "camera_connected": 0.0, "failed": 1.0, "state": "failed", "error": "gone"}
    b = {"open_events": 1, "disk_low": 1.0, "disk_free_mb": 300.0, "evidence_busy_seconds": 70.0,
         "seconds_since_frame": 0.1, "camera_connected": 1.0, "failed": 0.0, "state": "streaming", "error": ""}
    c = {"open_events": 0.0, "disk_low": 1.0, "disk_free_mb": 450.0}
    assert combine_status([a, b, c]) == {"open_events": 3.0, "disk_low": 1.0, "disk_free_mb": 300.0,
                                         "evidence_busy_seconds": 70.0}
    assert combine_status([a]) == {"open_events": 2.0, "disk_low": 0.0, "disk_free_mb": -1.0,
                                   "evidence_busy_seconds": 5.0}  # no disk read yet: still -1
    assert combine_status([]) == {}


def test_two_cameras_on_one_low_disk_report_its_free_space_once():
    """Each camera's segmenter reads the one shared disk; the sum said 600 MB free and disk_low 2."""
    class Segmenter:
        def status(self) -> dict[str, float]:
            return {"disk_low": 1.0, "disk_free_mb": 300.0, "clips_open": 1.0}

    board = StatusBoard(None, [("segment", PerCamera({"a": Segmenter(), "b": Segmenter()}))], refresh=0, clock=Clock())
    board.on_batch([frame(0)])
    snap = board.snapshot()
    assert (snap["disk_low"], snap["disk_free_mb"], snap["clips_open"]) == (1.0, 300.0, 2.0)
    assert board.health() == (False, ["disk low: not writing clips (300 MB free)"])


def test_status_line_shows_rates_over_the_interval_and_shouts_problems():
    before = {"frames_received": 100, "frames_processed": 90, "frames_detected": 20, "frames_dropped": 5, "reconnects": 1}
    now = {"frames_received": 200, "frames_processed": 180, "frames_detected": 40, "frames_dropped": 15, "reconnects": 1,
           "active_tracks": 4, "open_events": 1, "evidence_pending": 2}
    line = status_line(now, before, 10.0, ["camera stalled: no frame for 12 s"])
    assert line == ("status: in 10.0 fps, processed 9.0 fps, detected 2.0 fps, dropped 15, tracks 4, open events 1, "
                    "outbox pending 2, "
                    "reconnects 1 | CAMERA STALLED: NO FRAME FOR 12 S")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_endpoints_serve_prometheus_metrics_and_health_on_loopback():
    camera, clock = FakeCamera(), Clock()
    board = board_with(camera, clock=clock)
    board.on_batch([frame(2)])
    with StatusReporter(board, interval=0, port=0) as reporter:
        base = f"http://127.0.0.1:{reporter.port}"
        code, body = get(base + "/metrics")
        assert code == 200
        assert "vizoflow_healthy 1.0" in body and "vizoflow_active_tracks 2.0" in body
        assert "vizoflow_frames_processed 1.0" in body
        assert get(base + "/health") == (200, json.dumps({"status": "ok", "problems": []}))
        camera.values["seconds_since_frame"] = 30
        code, body = get(base + "/health")
        assert code == 503 and json.loads(body)["status"] == "unhealthy"
        assert "vizoflow_healthy 0.0" in get(base + "/metrics")[1]
        assert get(base + "/other")[0] == 404


def test_a_busy_port_is_a_config_error():
    board = board_with(FakeCamera())
    with (StatusReporter(board, interval=0, port=0) as first,
          pytest.raises(ConfigError, match="status.port"),
          StatusReporter(board, interval=0, port=first.port)):
        pass


def test_status_lines_are_logged_periodically(caplog):
    board = board_with(FakeCamera())
    board.on_batch([frame(1)])
    with caplog.at_level(logging.INFO, logger="vizoflow.status"), StatusReporter(board, interval=0.05, port=None):
        deadline = time.monotonic() + 5
        while len([r for r in caplog.records if r.getMessage().startswith("status:")]) < 2:
            assert time.monotonic() < deadline, "no status lines within 5 s"
            time.sleep(0.02)


def test_falling_behind_the_camera_is_degraded_not_unhealthy():
    camera, clock = FakeCamera(), Clock()
    board = StatusBoard(camera, [], stall_seconds=10, refresh=0, window=30, clock=clock)
    for second in range(40):  # 10 fps in; 5% dropped for 20 s, then 25%
        camera.values["frames_received"] = 10 * second
        camera.values["frames_dropped"] = (second if second < 20 else 20 + 5 * (second - 20)) / 2
        board.on_batch([frame(1)])
        clock.t += 1
    clock.t -= 1
    healthy, problems = board.health()
    # the last 30 s are seconds 9..39: 300 frames received, 4.5 -> 57.5 dropped
    assert board.dropped_share() == pytest.approx(53 / 300)
    assert healthy and problems == ["degraded: falling behind the camera, 18% of frames dropped in the last 30 s"]


class Flaky:
    """A node whose status() fails while ``error`` is set."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def status(self) -> dict[str, float]:
        if self.error is not None:
            raise self.error
        return {"disk_low": 0.0, "clips_open": 1.0}


def test_a_failing_node_status_is_degraded_names_the_node_and_warns_once_per_streak(caplog):
    """Real loopback /health and /metrics: a status() that raises is not silently 0."""
    camera, clock, segment = FakeCamera(), Clock(), Flaky()
    board = StatusBoard(camera, [("rule", FakeRule()), ("segment", segment)], stall_seconds=10, refresh=0, clock=clock)
    board.on_batch([frame(1)])
    with caplog.at_level(logging.DEBUG, logger="vizoflow.status"), \
            StatusReporter(board, interval=0, port=0) as reporter:
        base = f"http://127.0.0.1:{reporter.port}"
        assert get(base + "/health") == (200, json.dumps({"status": "ok", "problems": []}))
        segment.error = OSError("statvfs failed")
        for _ in range(3):  # one streak of failures
            board.on_batch([frame(1)])
        code, body = get(base + "/health")
        assert code == 200, body  # degraded: camera and analysis go on, only this node's numbers are missing
        assert json.loads(body) == {"status": "ok",
                                    "problems": ["degraded: node 'segment' status failed: OSError: statvfs failed"]}
        metrics = get(base + "/metrics")[1]
        assert "vizoflow_status_failures 1.0" in metrics and "vizoflow_clips_open" not in metrics  # missing, not 0
        assert "vizoflow_open_events 2.0" in metrics  # the other node still counts
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "segment" in r.getMessage()]
        assert len(warnings) == 1 and "statvfs failed" in warnings[0].getMessage()

        segment.error = None  # works again: healthy, and said so
        board.on_batch([frame(1)])
        assert get(base + "/health") == (200, json.dumps({"status": "ok", "problems": []}))
        assert "vizoflow_status_failures 0.0" in get(base + "/metrics")[1]
        assert any(r.levelno == logging.INFO and "works again" in r.getMessage() for r in caplog.records)

        segment.error = ValueError("bad")  # a new streak warns again
        board.on_batch([frame(1)])
        assert len([r for r in caplog.records if r.levelno == logging.WARNING and "segment" in r.getMessage()]) == 2


def test_a_failing_source_status_neither_stops_the_frame_loop_nor_breaks_health():
    class BrokenCamera:
        def status(self) -> dict[str, float]:
            raise RuntimeError("camera stats gone")

    board = StatusBoard(BrokenCamera(), [], stall_seconds=10, refresh=0, clock=Clock())
    board.on_batch([frame(1)])  # used to raise into the runtime and end the run
    with StatusReporter(board, interval=0, port=0) as reporter:
        code, body = get(f"http://127.0.0.1:{reporter.port}/health")
        assert code == 200 and json.loads(body)["problems"] == [
            "degraded: node 'source' status failed: RuntimeError: camera stats gone"]
        assert get(f"http://127.0.0.1:{reporter.port}/metrics")[0] == 200


def test_frames_the_detector_skipped_are_processed_but_not_detected():
    board = StatusBoard(None, [], refresh=0)
    looked, skipped = frame(2), frame(0)
    skipped.analysed = False  # no boxes: it says nothing of how many people are there
    board.on_batch([looked, skipped])
    snap = board.snapshot()
    assert (snap["frames_processed"], snap["frames_detected"], snap["active_tracks"]) == (2, 1, 2)
