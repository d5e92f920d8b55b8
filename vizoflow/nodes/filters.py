"""Which tracks are believably people: no alerts on racks, mannequins and posters.

A COCO detector on store footage finds "people" in clothes racks, mannequins and
reflections, and a tracker confirms them. Frigate answers with object filters
(``min_score``, a median ``threshold``, area and ratio limits, masks, stationary
objects); vizoflow does the same per track, before roles and rules:

* per detection, on every frame: ignore masks, area and aspect limits drop boxes
  that can never be a person here (a poster, a box the size of the frame);
* per track, once: a track becomes *trusted* when the median of its recent scores
  reaches ``score_threshold`` **and** its box has shown life: some edge moved by
  ``min_motion`` of its height on ``motion_frames`` frames. A person standing still
  still moves arms, head and feet; a rack never does, however long it is seen.

Untrusted tracks stay in the frame (``detections.data["trusted"]`` is False) so that
rules can *begin* an episode with them and start the event once they are trusted,
from the moment the condition first held (see :mod:`vizoflow.nodes.rules`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.zones import Zones


@dataclass(slots=True)
class _TrackEvidence:
    """What is known of one track so far."""

    first_box: np.ndarray
    last_seen: float
    scores: deque[float] = field(default_factory=deque)
    lively_frames: int = 0
    trusted: bool = False


class PersonFilter:
    """Drop impossible boxes, and mark each track trusted once it is believably a person.

    Args:
        zones: The site's zones, name to polygon.
        masks: Names of zones where nothing counts (a poster, a screen, a mirror):
            boxes whose ground point lies in one are dropped.
        min_area, max_area: Box area limits as a fraction of the frame area (so the
            same setting works at any resolution).
        min_ratio, max_ratio: Width / height limits of a box.
        score_threshold: Median of the last ``score_window`` detection scores a track
            needs (Frigate's ``threshold``); 0 turns the score test off.
        score_window: How many recent scores the median is taken over, and how many a
            track needs before it can be trusted.
        min_motion: How far (fraction of the box height) an edge of the box must move
            from where it was first seen for a frame to count as lively; 0 turns the
            stationary test off.
        motion_frames: Lively frames a track needs (one jittery detection is not life).
        forget_seconds: Tracks unseen this long are forgotten, so memory stays flat live.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).

    Raises:
        ConfigError: a limit out of range or a mask that names no zone.
    """

    def __init__(self, zones: Mapping[str, Sequence[Sequence[float]]] | None = None, masks: Sequence[str] = (),
                 min_area: float = 0.0, max_area: float = 1.0, min_ratio: float = 0.0, max_ratio: float | None = None,
                 score_threshold: float = 0.0, score_window: int = 10, min_motion: float = 0.0, motion_frames: int = 3,
                 forget_seconds: float = 300.0, frame_size: Sequence[int] | None = None) -> None:
        if not 0.0 <= min_area <= max_area <= 1.0:
            raise ConfigError(f"filters: need 0 <= min_area <= max_area <= 1 (fractions of the frame), got {min_area}, {max_area}")
        if min_ratio < 0 or (max_ratio is not None and max_ratio < min_ratio):
            raise ConfigError(f"filters: need 0 <= min_ratio <= max_ratio, got {min_ratio}, {max_ratio}")
        if not 0.0 <= score_threshold <= 1.0 or score_window < 1:
            raise ConfigError(f"filters: need score_threshold in [0, 1] and score_window >= 1, got {score_threshold}, {score_window}")
        if min_motion < 0 or motion_frames < 1:
            raise ConfigError(f"filters: need min_motion >= 0 and motion_frames >= 1, got {min_motion}, {motion_frames}")
        self.zones = Zones(zones, drawn_size=frame_size)
        self.zones.require(masks, "filters.masks")
        self.masks = list(masks)
        self.min_area, self.max_area = min_area, max_area
        self.min_ratio, self.max_ratio = min_ratio, max_ratio if max_ratio is not None else float("inf")
        self.score_threshold, self.score_window = score_threshold, score_window
        self.min_motion, self.motion_frames = min_motion, motion_frames
        self.forget_seconds = forget_seconds
        self._tracks: dict[int, _TrackEvidence] = {}
        self._video: str | None = None
        self.dropped = 0  # boxes dropped by masks, area or ratio (status)

    def process(self, frame: Frame) -> Frame:
        """Drop impossible boxes; set ``detections.data["trusted"]``."""
        self.zones.check_inside(frame.size)  # every frame: a live camera may come back at another size
        if frame.video != self._video:
            self._video = frame.video
            self._tracks.clear()
        det = frame.detections
        keep = self._possible(det, frame.size)
        if not keep.all():
            self.dropped += int((~keep).sum())
            det = det[keep]
        trusted = np.zeros(len(det), dtype=bool)
        if det.tracker_id is not None:
            scores = det.confidence if det.confidence is not None else np.ones(len(det))
            for i, (tid, box, score) in enumerate(zip(det.tracker_id.tolist(), det.xyxy, scores.tolist())):
                trusted[i] = self._observe(tid, box, score, frame.timestamp)
        det.data["trusted"] = trusted
        frame.detections = det
        self._forget(frame.timestamp)
        return frame

    def _possible(self, det: sv.Detections, size: tuple[int, int]) -> np.ndarray:
        """Boxes that may be a person here: outside masks, within area and ratio limits."""
        if len(det) == 0:
            return np.ones(0, dtype=bool)
        w = det.xyxy[:, 2] - det.xyxy[:, 0]
        h = np.maximum(det.xyxy[:, 3] - det.xyxy[:, 1], 1e-6)
        area = w * h / float(size[0] * size[1])
        ratio = w / h
        keep = (area >= self.min_area) & (area <= self.max_area) & (ratio >= self.min_ratio) & (ratio <= self.max_ratio)
        for name in self.masks:
            keep &= ~self.zones.contains(name, det)
        return keep

    def _observe(self, tid: int, box: np.ndarray, score: float, t: float) -> bool:
        track = self._tracks.get(tid)
        if track is None:
            track = self._tracks[tid] = _TrackEvidence(first_box=box.copy(), last_seen=t,
                                                        scores=deque(maxlen=self.score_window))
        track.last_seen = t
        if track.trusted:
            return True
        track.scores.append(score)
        height = max(float(track.first_box[3] - track.first_box[1]), 1.0)
        if np.abs(box - track.first_box).max() >= self.min_motion * height:
            track.lively_frames += 1
        scored = len(track.scores) >= self.score_window and float(np.median(track.scores)) >= self.score_threshold
        lively = self.min_motion == 0 or track.lively_frames >= self.motion_frames
        track.trusted = scored and lively
        return track.trusted

    def _forget(self, now: float) -> None:
        for tid in [tid for tid, tr in self._tracks.items() if now - tr.last_seen > self.forget_seconds]:
            del self._tracks[tid]

    def status(self) -> dict[str, float]:
        """Tracks not (yet) trusted and boxes dropped, for the live status line."""
        return {"untrusted_tracks": sum(not tr.trusted for tr in self._tracks.values()), "boxes_dropped": self.dropped}
