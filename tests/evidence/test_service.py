"""The evidence service: one owner of the outbox, closed in the right order."""

from __future__ import annotations

import json
import time

from tests.test_delivery import make_event
from vizoflow.evidence import Evidence
from vizoflow.evidence.outbox import Outbox
from vizoflow.evidence.service import OUTBOX_NAME
from vizoflow.nodes.analytics import AnalyticsSink


def test_a_slow_last_upload_is_finished_and_recorded_before_the_outbox_closes(tmp_path, httpserver):
    """The final delivery outlives ``drain_seconds``: the step under way ends and is recorded;
    the outbox is not closed under it (the clip would be uploaded again on the next run)."""
    def slow(_request):
        from werkzeug import Response

        time.sleep(1.0)
        return Response(json.dumps({"success": True, "filename": "stored.mp4"}), content_type="application/json")

    httpserver.expect_request("/uploadFile", method="POST").respond_with_handler(slow)
    evidence = Evidence(tmp_path, upload_url=httpserver.url_for("/uploadFile"), drain_seconds=0.2, poll_seconds=60)
    clip = tmp_path / "segment_000001_cam_20251025_110052_interaction_start.mp4"
    clip.write_bytes(b"\0" * 1000)
    event = make_event()
    item_id = evidence.outbox.add(event.event_id, 1, event.kind, str(clip), event.to_dict())
    evidence.close()
    item = Outbox(tmp_path / OUTBOX_NAME).get(item_id)
    assert item.uploaded_filename == "stored.mp4" and item.state != "clip_written"


def test_the_analytics_are_written_even_when_the_evidence_cannot_be_linked_at_close(tmp_path):
    class Broken:
        def linker(self, _collector):
            return self

        def finish_delivery(self):
            raise OSError(28, "No space left on device")

    sink = AnalyticsSink(str(tmp_path / "analytics_metrics.json"), str(tmp_path / "log.jsonl"),
                         str(tmp_path / "events.parquet"), evidence=Broken())  # type: ignore[arg-type]
    event = make_event()
    sink.collector.add_event(event)
    sink.close()
    assert (tmp_path / "events.parquet").exists()
    day = json.loads((tmp_path / "analytics_metrics.json").read_text())
    assert [e["interaction_duration"] for e in day["interaction_metrics"]["interaction_times"]] == [30.0]
