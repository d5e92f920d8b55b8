"""The unit of data that flows through the graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from vizoflow.events import Event


@dataclass(slots=True)
class Frame:
    """One decoded video frame and what nodes learned about it.

    Attributes:
        video: Name of the video (file stem or camera name) the frame comes from.
        index: 0-based index of the frame in its video (strided frames keep their
            original index, so boxes line up with ground truth).
        timestamp: Seconds on the video clock (presentation time) in batch; live,
            monotonic seconds since the camera source started (immune to wall-clock
            steps). Rules, buffers and stall checks only ever subtract timestamps.
        image: BGR pixels, ``(H, W, 3)`` uint8.
        detections: Boxes; ``tracker_id`` after tracking, ``data["role"]`` after roles.
        events: Events emitted on this frame by rule nodes.
        figures: Store figures handed to the analytics sink, local day to sections of
            that day's analytics file (set by :class:`~vizoflow.nodes.store.StoreAnalytics`
            when they changed, now and then).
        epoch: UTC epoch seconds of clock time 0, so ``epoch + timestamp`` is the
            real time (live: the wall clock read once when the source started).
        camera: Camera of a site with several (``cameras:``); empty for a one-camera run,
            whose nodes all belong to that one camera.
        analysed: Whether the detector looks at this frame (:class:`~vizoflow.nodes.gate.DetectGate`).
            A frame it skips goes only to the nodes that need every frame (clips,
            preview); the detector, the tracker and the rules never see it.
    """

    video: str
    index: int
    timestamp: float
    image: np.ndarray
    detections: sv.Detections = field(default_factory=sv.Detections.empty)
    events: list[Event] = field(default_factory=list)
    epoch: float = 0.0
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    camera: str = ""
    analysed: bool = True

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the image in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])
