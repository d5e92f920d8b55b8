import json
import urllib.request
from pathlib import Path

from vizoflow.pipeline import review_page
from vizoflow.review.site import CameraLayout, LiveView, ReviewSite


class Board:
    """A live run's status board as the review page reads it."""

    def __init__(self, cameras: dict, problems: list[str]) -> None:
        self._cameras, self.problems, self.processed = cameras, problems, 0.0

    def health(self):
        return not self.problems, self.problems

    def cameras(self):
        return self._cameras

    def snapshot(self):
        return {"frames_processed": self.processed}


def test_live_health_is_told_per_camera():
    board = Board({"till": {"frames_processed": 10.0}, "door": {"frames_processed": 5.0}}, ["camera 'door' stalled"])
    view = LiveView(board)
    first = view.cameras()
    assert first["till"] == {"healthy": True, "problems": [], "fps": None}  # no rate from one look
    assert first["door"]["healthy"] is False and first["door"]["problems"] == ["camera 'door' stalled"]
    board.problems = ["pipeline stuck"]
    assert not any(c["healthy"] for c in view.cameras().values())  # a site-wide problem is every camera's


def test_the_rate_is_frames_a_second_between_two_looks(monkeypatch):
    board = Board({"till": {"frames_processed": 10.0}}, [])
    clock = iter([100.0, 102.0])
    monkeypatch.setattr("vizoflow.review.site.time.monotonic", lambda: next(clock))
    view = LiveView(board)
    view.cameras()
    board._cameras = {"till": {"frames_processed": 30.0}}
    assert view.cameras()["till"]["fps"] == 10.0


def test_a_one_camera_site_reads_the_site_numbers():
    board = Board({}, [])
    view = LiveView(board, single="checkout")
    assert view.cameras() == {"checkout": {"healthy": True, "problems": [], "fps": None}}


def test_a_camera_layout_names_the_zones_the_rules_need(compose_cfg):
    cfg = compose_cfg("+site=demo")
    layout = CameraLayout.of(cfg, "checkout", own=False)
    assert layout.frame_size == [320, 240] and "checkout_exit" in layout.lines
    assert layout.needs["rules.staff.zones"] == ["cashier_1", "cashier_2", "packer"]
    assert layout.needs["rules.interaction.pairs"] == ["cashier_1", "lane_1"]


def test_a_site_with_cameras_has_a_layout_per_camera(compose_cfg, tmp_path: Path):
    cfg = compose_cfg("+site=store42", f"serve.runs_dir={tmp_path}")  # its camera URLs come from variables not set here
    site = ReviewSite.from_config(cfg)
    assert len(site.cameras) >= 2 and all(c.own for c in site.cameras.values())


def test_a_run_serves_its_page_while_it_lasts_when_serve_port_is_set(compose_cfg, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("VIZO_UI_PASSWORD", raising=False)
    out = tmp_path / "run"
    out.mkdir()
    (out / "interactions.jsonl").write_text(json.dumps({"event_id": "q1", "kind": "queue", "phase": "start",
                                                        "camera": "video", "start": "2026-12-05T10:00:00+00:00",
                                                        "end": "2026-12-05T10:00:09+00:00", "duration": 9}) + "\n")
    cfg = compose_cfg("+site=demo", "serve.port=0", f"output_dir={out}", f"evidence.dir={tmp_path}/segments")
    with review_page(cfg, out, Board({}, [])) as server:
        with urllib.request.urlopen(server.url + "api/events", timeout=5) as reply:
            data = json.load(reply)
        assert data["run"] == "run" and [e["event_id"] for e in data["events"]] == ["q1"]
        assert data["events"][0]["open"] is True and data["events"][0]["camera"] == "checkout"
        with urllib.request.urlopen(server.url + "cameras", timeout=5) as reply:
            assert "healthy" in reply.read().decode()
    assert not server.alive


def test_without_serve_port_a_run_serves_nothing(compose_cfg, tmp_path: Path):
    with review_page(compose_cfg("+site=demo"), tmp_path, Board({}, [])) as server:
        assert server is None
