"""The graph's evidence node: one camera's frames and events, handed to the evidence service."""

from __future__ import annotations

from vizoflow.evidence import Evidence
from vizoflow.frame import Frame


class EvidenceClips:
    """Node: gives each frame and its events to this camera's clip cutter in the evidence service.

    Everything else (the outbox, recording, delivery, retention, free disk) belongs to
    :class:`~vizoflow.evidence.Evidence`, one per site and process.

    Args:
        evidence: The site's evidence service (graph entry ``uses: [evidence]``).
        metrics_path: The run's ``analytics_metrics.json``, where the clips' evidence is linked.
    """

    needs_video = True  # cuts clips from pixels: left out when replaying the track cache
    every_frame = True  # clips keep the camera's frame rate, also where the detector skips frames

    def __init__(self, evidence: Evidence, metrics_path: str | None = None) -> None:
        self.cutter = evidence.clips(metrics_path)

    def process(self, frame: Frame) -> Frame:
        """Queue the frame and its events for the cutter (blocks only if it is far behind)."""
        return self.cutter.process(frame)

    def finish(self, frame: Frame) -> Frame:
        """End of stream: the final events, then every open clip closed."""
        return self.cutter.finish(frame)

    def status(self) -> dict[str, float]:
        """This camera's clips: open, written, skipped, queued frames."""
        return self.cutter.status()

    def close(self) -> None:
        """Finish writing this camera's clips."""
        self.cutter.close()
