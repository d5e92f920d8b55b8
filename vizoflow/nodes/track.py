"""Multi-object tracking with DeepSORT (``deep-sort-realtime``)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.cosine import NearestCosineMetric
from vizoflow.reid import EmbedderPool

EMBEDDING = "embedding"  # detections.data key of each tracked box's appearance feature (1280 floats)
EMBEDDING_SIZE = 1280  # MobileNetV2 bottleneck features


class AppearanceReuse:
    """Which detections may keep their track's last appearance feature instead of a new one.

    DeepSORT needs appearance only where boxes could be confused: people crossing,
    standing together, coming back. A detection that overlaps exactly one confirmed
    track (seen on the last look), while no other box comes near either of them, can
    only be that track, so the network need not run for it: it gets the track's last
    feature. Every track still gets a fresh feature at least every ``refresh_seconds``,
    so its looks follow a person who turns or takes off a coat.

    "Near" is an IoU above ``near_iou``, 0.3 by default: boxes that touch less than that
    are told apart by their places alone (it is also the least overlap DeepSORT's IoU
    stage accepts for a match, ``max_iou_distance`` 0.7). People who merely stand side by
    side at a till, boxes touching, keep their features. At any touch (0.05) the
    appearance model ran for 87% of the boxes on the busy checkout, at 0.3 for 43%, with
    the same events and identities on the labelled clips at the default detect gate. With
    the detector on every frame, reuse at 0.3 costs identities in crowds (tud-campus IDF1
    48.1 against 52.6 at 0.05; docs/performance.md).

    Args:
        refresh_seconds: Longest time a track's feature is reused (video clock).
        same_iou: IoU of a detection with its track's last box to be that track's.
        near_iou: IoU above which two boxes are "near" (then both get fresh features).
    """

    def __init__(self, refresh_seconds: float = 1.0, same_iou: float = 0.5, near_iou: float = 0.3) -> None:
        if not 0.0 <= near_iou < same_iou:
            raise ConfigError(f"tracker.embed_near_iou must be at least 0 and below {same_iou}, got {near_iou}")
        self.refresh_seconds, self.same_iou, self.near_iou = refresh_seconds, same_iou, near_iou
        self._fresh: dict[int, float] = {}  # track id (deep-sort-realtime's, as a number) -> when last computed
        self.computed = self.reused = 0

    def plan(self, boxes: np.ndarray, tracks: list, t: float) -> list[np.ndarray | None]:
        """Per detection: the feature to reuse, or None where the network must run."""
        plan: list[np.ndarray | None] = [None] * len(boxes)
        recent = [tr for tr in tracks if tr.is_confirmed() and tr.time_since_update == 0 and tr.features
                  and t - self._fresh.get(int(tr.track_id), -np.inf) < self.refresh_seconds]
        if recent and len(boxes):
            track_boxes = np.asarray([tr.to_ltrb() for tr in tracks], dtype=float)
            overlap = sv.box_iou_batch(boxes, track_boxes)
            near_tracks = overlap > self.near_iou
            near_dets = sv.box_iou_batch(boxes, boxes) > self.near_iou
            np.fill_diagonal(near_dets, False)
            index = {id(tr): k for k, tr in enumerate(tracks)}
            for tr in recent:
                k = index[id(tr)]
                same = np.flatnonzero(near_tracks[:, k])
                if len(same) != 1:
                    continue
                i = same[0]
                alone = near_tracks[i].sum() == 1 and not near_dets[i].any()
                if alone and overlap[i, k] >= self.same_iou:
                    plan[i] = tr.features[-1]
        reused = sum(f is not None for f in plan)
        self.reused += reused
        self.computed += len(plan) - reused
        return plan

    def computed_for(self, track_ids: list[int], t: float) -> None:
        """These tracks got a freshly computed feature at ``t``."""
        for tid in track_ids:
            self._fresh[tid] = t

    def forget(self, live: set[int]) -> None:
        """Drop tracks the tracker deleted, so memory stays flat."""
        for tid in [tid for tid in self._fresh if tid not in live]:
            del self._fresh[tid]


class DeepSortTracker:
    """DeepSORT with its MobileNetV2 appearance embedder, into ``detections.tracker_id``.

    By default the embedder runs through OpenVINO (:mod:`vizoflow.reid`): same
    network and weights, identical features, about 5x cheaper per person on CPU.
    ``embedder: mobilenet`` selects deep-sort-realtime's own PyTorch embedder.

    DeepSORT's linear algebra works on tiny matrices (4x4 Kalman steps, small cost
    matrices), where BLAS threads cannot help; but OpenBLAS workers keep spinning
    after each call and take the cores inference needs (on 2 cores, tud-campus:
    tracking 152 -> 81 ms/frame with one BLAS thread). So the tracker limits BLAS
    to ``blas_threads`` for the whole process (through threadpoolctl). Its appearance
    memory is :class:`~vizoflow.nodes.cosine.NearestCosineMetric`: the library's
    distances, without renormalising every track's features on every look.

    Only confirmed tracks matched to a detection on this frame are output, each
    with that detection's own box and confidence (not the Kalman prediction), so
    boxes stay comparable with ground truth, and (OpenVINO embedder) its appearance
    feature in ``detections.data["embedding"]`` for the identity layer. The tracker restarts when the source
    moves on to another video.

    Args:
        max_age: Frames a lost track is kept before deletion.
        n_init: Consecutive detections before a track is confirmed.
        max_iou_distance: IoU gate for association.
        max_cosine_distance: Appearance gate for association.
        nn_budget: Appearance features kept per track (None: unbounded).
        embedder: ``openvino`` (default), or a deep-sort-realtime embedder name
            (``mobilenet`` ships its weights; the others need extra packages).
        cache_dir: Where the OpenVINO embedder keeps its converted model
            (default ``$VIZO_CACHE_DIR`` or ``~/.cache/vizoflow``).
        embed_width: OpenVINO embedder input width (multiple of 32).
        embed_height: OpenVINO embedder input height. 224x224 (default) is deep-sort-realtime's
            own input (identical features); a person-shaped 64x128 is 6x cheaper per person
            but loses identities in crowds (``docs/accuracy.md``).
        blas_threads: BLAS threads for the process (None: leave as it is).
        precision: OpenVINO embedder precision (``f32``, ``bf16``, ``auto``); see
            :mod:`vizoflow.inference`.
        embed_refresh_seconds: A detection that can only be its track (no other box near)
            reuses the track's feature for up to this long (:class:`AppearanceReuse`);
            None or 0: every detection gets a fresh feature.
        embed_near_iou: IoU above which another box counts as near (then appearance decides).
        embedders: The process's :class:`~vizoflow.reid.EmbedderPool` (graph entry
            ``uses: [embedders]``), so all cameras share one model; None: an own one.
    """

    needs_video = True  # its results are what the track cache stores

    def __init__(self, max_age: int = 30, n_init: int = 3, max_iou_distance: float = 0.7,
                 max_cosine_distance: float = 0.2, nn_budget: int | None = 100, embedder: str = "openvino",
                 cache_dir: str | None = None, embed_width: int = 224, embed_height: int = 224,
                 blas_threads: int | None = 1, precision: str = "f32", embed_refresh_seconds: float | None = 1.0,
                 embed_near_iou: float = 0.3,
                 embedders: EmbedderPool | None = None) -> None:
        if n_init < 1 or max_age < 1:
            raise ConfigError(f"tracker.n_init and tracker.max_age must be >= 1, got {n_init} and {max_age}")
        if blas_threads is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=blas_threads, user_api="blas")
        self._embedder = None
        if embedder == "openvino":
            pool = embedders if embedders is not None else EmbedderPool()
            self._embedder = pool.get(embed_width, embed_height, precision, cache_dir)
        self._params = dict(max_age=max_age, n_init=n_init, max_iou_distance=max_iou_distance,
                            max_cosine_distance=max_cosine_distance, nn_budget=nn_budget,
                            embedder=None if self._embedder else embedder)
        self._tracker = self._new()
        self._video: str | None = None
        self._reuse = (AppearanceReuse(embed_refresh_seconds, near_iou=embed_near_iou)
                       if self._embedder is not None and embed_refresh_seconds else None)

    def _appearance(self, frame: Frame, raw: list, boxes: np.ndarray) -> tuple[list[np.ndarray], set[int]]:
        """Each detection's feature, and which were computed now (the rest reuse their track's)."""
        crops, _ = self._tracker.crop_bb(frame.image, raw)
        plan = (self._reuse.plan(np.asarray(boxes, dtype=float), self._tracker.tracker.tracks, frame.timestamp)
                if self._reuse is not None else [None] * len(crops))
        fresh = [i for i, feature in enumerate(plan) if feature is None]
        for i, feature in zip(fresh, self._embedder.predict([crops[i] for i in fresh]), strict=True):
            plan[i] = feature
        return plan, set(fresh)

    def status(self) -> dict[str, float]:
        """Appearance features computed and reused so far (what the appearance model was spared)."""
        if self._reuse is None:
            return {}
        return {"appearance_computed": float(self._reuse.computed), "appearance_reused": float(self._reuse.reused)}

    def run_info(self) -> dict[str, str]:
        """For ``run.json``: the precision the embedder really runs in."""
        return {"embedder_precision": self._embedder.precision} if self._embedder is not None else {}

    def _new(self):
        logging.getLogger("deep_sort_realtime").setLevel(logging.WARNING)  # it logs its settings at INFO
        with warnings.catch_warnings():  # its embedder imports pkg_resources: deprecated, pinned
            warnings.simplefilter("ignore", UserWarning)
            from deep_sort_realtime.deepsort_tracker import DeepSort  # imports torch: only when built

            try:
                tracker = DeepSort(**self._params, half=False, embedder_gpu=False, bgr=True)
            except Exception as exc:  # it raises a bare Exception for an unknown embedder name
                if "not a valid choice" in str(exc):
                    raise ConfigError(f"tracker.embedder: {exc}; use openvino or mobilenet") from exc
                raise
        tracker.tracker.metric = NearestCosineMetric(self._params["max_cosine_distance"], self._params["nn_budget"])
        return tracker

    def process(self, frame: Frame) -> Frame:
        """Associate this frame's detections with tracks."""
        if frame.video != self._video:
            if self._video is not None:
                self._tracker = self._new()
                if self._reuse is not None:
                    self._reuse.forget(set())  # the new tracker numbers its tracks from 1 again
            self._video = frame.video
        det = frame.detections
        raw = [([x1, y1, x2 - x1, y2 - y1], float(c), 0)
               for (x1, y1, x2, y2), c in zip(det.xyxy, det.confidence if det.confidence is not None else np.ones(len(det)))]
        embeds, fresh = None, set(range(len(det)))
        if self._embedder is not None:
            embeds, fresh = self._appearance(frame, raw, det.xyxy)
        tracks = self._tracker.update_tracks(raw, embeds=embeds, frame=frame.image, others=list(range(len(det))))
        rows, ids = [], []
        for track in tracks:
            if track.is_confirmed() and track.time_since_update == 0 and track.get_det_supplementary() is not None:
                rows.append(track.get_det_supplementary())
                ids.append(int(track.track_id))
        if self._reuse is not None:
            self._reuse.computed_for([tid for tid, row in zip(ids, rows) if row in fresh], frame.timestamp)
            self._reuse.forget({int(tr.track_id) for tr in self._tracker.tracker.tracks})
        out = det[np.asarray(rows, dtype=int)] if rows else det[np.zeros(len(det), dtype=bool)]
        out.tracker_id = np.asarray(ids, dtype=int)
        if embeds is not None:  # the identity layer re-identifies people with the same features
            out.data[EMBEDDING] = (np.asarray(embeds, dtype=np.float32)[rows] if rows
                                   else np.zeros((0, EMBEDDING_SIZE), np.float32))
        frame.detections = out
        return frame


class ByteTrack:
    """ByteTrack from Roboflow's ``trackers`` package: motion and IoU only, no embedder.

    Well under a millisecond per frame, so it is the fast setting when people rarely
    cross or hide each other; identities suffer more than DeepSORT's in occlusion
    (see ``docs/accuracy.md``). Frame timestamps drive its motion model, so frame
    stride and live gaps are handled. Detections not (yet) on a confirmed track are
    dropped, as with :class:`DeepSortTracker`.

    Args:
        lost_track_buffer: How long a lost track is kept, in frames at 30 fps.
        track_activation_threshold: Minimum confidence for a detection to start a track.
        minimum_consecutive_frames: Matches before a track gets an id.
        minimum_iou_threshold: IoU gate for association.
        high_conf_det_threshold: Split between ByteTrack's first and second association.
        embedders: Ignored (the graph's ``track`` entry hands the embedder pool to any tracker).
    """

    needs_video = True  # its results are what the track cache stores

    def __init__(self, lost_track_buffer: int = 30, track_activation_threshold: float = 0.5,
                 minimum_consecutive_frames: int = 3, minimum_iou_threshold: float = 0.1,
                 high_conf_det_threshold: float = 0.5, embedders: EmbedderPool | None = None) -> None:
        del embedders  # no appearance model: the graph's track entry offers the pool to either tracker
        from trackers import ByteTrackTracker  # optional dependency until this tracker is chosen

        self._tracker = ByteTrackTracker(lost_track_buffer=lost_track_buffer,
                                         track_activation_threshold=track_activation_threshold,
                                         minimum_consecutive_frames=minimum_consecutive_frames,
                                         minimum_iou_threshold=minimum_iou_threshold,
                                         high_conf_det_threshold=high_conf_det_threshold)
        self._video: str | None = None

    def process(self, frame: Frame) -> Frame:
        """Associate this frame's detections with tracks."""
        if frame.video != self._video:
            self._tracker.reset()
            self._video = frame.video
        out = self._tracker.update(frame.detections, timestamp=frame.timestamp)
        frame.detections = out[out.tracker_id >= 0]
        return frame
