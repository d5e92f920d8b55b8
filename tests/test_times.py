"""Where dates come from: an event start that cannot be read is an error, never "now"."""

from __future__ import annotations

import pytest

from vizoflow.evidence.courier import build_courier, incident_id_for
from vizoflow.evidence.delivery import PermanentError
from vizoflow.evidence.outbox import Item, Outbox


def _item(start) -> Item:
    event = {} if start is None else {"start": start}
    return Item(id=7, event_id="interaction_x", part=0, kind="interaction", segment_path="x.mp4", event=event,
                state="clip_written", incident_id=None, uploaded_filename=None, video_url=None,
                upload_timestamp=None, attempts=0, last_error=None)


def test_incident_id_is_dated_from_the_event_start_in_utc():
    assert incident_id_for(_item("2025-10-25T11:30:52.400+00:00")) == "incident_20251025_113052_7"
    assert incident_id_for(_item("2025-10-25T13:30:52+02:00")) == "incident_20251025_113052_7"


@pytest.mark.parametrize("start", [None, "", "not a time", "2025-10-25T11:30:52", 1761391852.4])
def test_an_unreadable_event_start_is_an_error_not_the_current_time(start):
    with pytest.raises(PermanentError, match="interaction_x.*cannot be dated"):
        incident_id_for(_item(start))


def test_courier_parks_an_undatable_item_with_the_reason(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        item_id = outbox.add("interaction_x", 0, "interaction", str(clip), {"start": "garbage", "camera": "c"})
        courier = build_courier(outbox, "site", "cam", None, None, "file://{filename}", tmp_path)
        courier.drain()
        item = outbox.get(item_id)
        assert item.state == "failed" and "'garbage'" in (item.last_error or "")
        assert item.incident_id is None  # no incident dated "now"
    finally:
        outbox.close()


def test_run_json_and_analytics_metadata_say_where_the_dates_come_from(tmp_path, compose_cfg, caplog):
    """A file without creation_time: both outputs say the dates are a guess, and a warning says why."""
    import json
    import logging

    from tests.conftest import write_video
    from vizoflow.nodes.analytics import AnalyticsSink
    from vizoflow.nodes.sources import VideoFileSource
    from vizoflow.pipeline import run_pipeline

    video = write_video(tmp_path / "copied.mp4", frames=5, fps=10)
    cfg = compose_cfg("runtime.progress=false")
    for given, expected in [(None, "modification time (guess)"), (1000.0, "source.start_time")]:
        out = tmp_path / f"out_{expected[:6]}"
        cfg.output_dir = str(out)
        sink = AnalyticsSink(str(out / "analytics_metrics.json"), str(out / "interactions.jsonl"),
                           str(out / "events.parquet"))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            stats = run_pipeline(cfg, source=VideoFileSource(str(video), start_time=given), nodes=[("metrics", sink)])
        assert stats.status == "ok"
        assert json.loads((out / "run.json").read_text())["start_time_source"] == expected
        metadata = json.loads((out / "analytics_metrics.json").read_text())["metadata"]
        assert metadata["start_time_source"] == expected and metadata["version"] == "1.1"
        guesses = [r for r in caplog.records if "copied.mp4" in r.getMessage() and "guessed" in r.getMessage()]
        assert len(guesses) == (1 if given is None else 0)
