"""Events emitted by rule nodes and the video evidence attached to them.

Both are frozen dataclasses; their JSON form is produced here and nowhere else so
the log, the metrics file and the incident payload agree on field names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from vizoflow.clock import SiteClock

EventKind = Literal["interaction", "unattended", "queue"]
Phase = Literal["start", "update", "end"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class VideoEvidence:
    """Where the clip of an event lives once delivered (``video_evidence`` in the v1.1 analytics format)."""

    segment_filename: str
    uploaded_filename: str
    video_url: str
    incident_id: str
    upload_timestamp: str

    def to_dict(self) -> dict[str, str]:
        """Plain dict in the v1.1 format's field order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoEvidence:
        """Inverse of :meth:`to_dict`; extra keys are ignored."""
        return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Event:
    """One phase (start, update or end) of a detected situation.

    Attributes:
        kind: interaction, unattended or queue.
        phase: start, update or end; each event id has exactly one start and one end.
        event_id: Stable across the phases of one event, e.g. ``interaction-000003``.
        camera: Camera (video) the event was seen on.
        track_ids: Track ids involved; for interaction ``(staff_id, customer_id)``.
        boxes: ``xyxy`` boxes of those tracks at the start of the event.
        confidence: Mean detection confidence of those tracks over the event, 0..1.
        started_at: Start time, seconds on the frame clock.
        duration: Seconds since ``started_at`` (0 on start).
        epoch: Add to clock seconds to get UTC epoch seconds (0 when the clock is wall time).
        details: Kind-specific numbers, e.g. ``waiting_time`` or ``max_length``.
    """

    kind: EventKind
    phase: Phase
    event_id: str
    camera: str
    track_ids: tuple[int, ...]
    boxes: tuple[Box, ...]
    confidence: float
    started_at: float
    duration: float
    epoch: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ended_at(self) -> float:
        """End (or current) time on the frame clock."""
        return self.started_at + self.duration

    def to_dict(self, clock: SiteClock | None = None) -> dict[str, Any]:
        """JSON-ready dict with ISO 8601 start/end times in the site's local time (UTC without a clock)."""
        clock = clock or SiteClock()
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "phase": self.phase,
            "camera": self.camera,
            "track_ids": list(self.track_ids),
            "boxes": [list(b) for b in self.boxes],
            "confidence": round(self.confidence, 4),
            "start": clock.iso(self.epoch + self.started_at),
            "end": clock.iso(self.epoch + self.ended_at),
            "started_at": self.started_at,
            "duration": round(self.duration, 3),
            "details": dict(self.details),
        }
